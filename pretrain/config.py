"""Pretraining configuration: typed defaults in one dataclass, overridden by a YAML file, then by ``--key value``
flags (nanoGPT habit). Unknown keys are rejected, values are converted to the field's type.

    cfg = load_config("pretrain/configs/tiny_cpu.yaml", ["--lr", "3e-4", "--max_steps", "20"])
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path


@dataclass
class TrainConfig:
    # ---- run
    out_dir: str = "runs/pretrain"  # checkpoint.pt, log.jsonl, config.yaml and the exported model/ folder
    seed: int = 0
    device: str = "auto"  # auto (cuda if available), cpu, cuda or cuda:N (under torchrun: each rank its local GPU)
    # ---- model
    model: str = "vtr_test"  # registry architecture or weight name, or a vtr model folder
    init: str = ""  # checkpoint to start from (release .pth, vtr folder, or a weight name for its released file)
    text_weights: str = ""  # HF BERT name/folder for the text encoder ("bert-base-uncased"); "" keeps init/random
    num_frames: int = 0  # 0: the model's preprocessing
    img_size: int = 0  # 0: the model's preprocessing
    max_txt_l: int = 0  # 0: the model's preprocessing, raised to fit the training captions (train.fit_text_length)
    grad_checkpointing: bool = False
    # ---- data
    train_shards: str = ""  # video shards: brace pattern, glob, folder, or several joined by "::"
    image_shards: str = ""  # optional image shards (1-frame videos); steps are all-video or all-image
    samples_per_epoch: int = 0  # video samples per epoch over all ranks (0: 10 * number of video shards * 1000)
    image_samples_per_epoch: int = 0  # image samples per epoch over all ranks
    batch_size: int = 128  # per rank
    num_workers: int = 2  # DataLoader workers per rank
    shards_per_chunk: int = 4  # shards interleaved and shuffled together by each worker
    shuffle_buffer: int = 500
    decode_cache_mb: float = 0  # per rank: keep short clips decoded between epochs (vtr.data.shards); 0: off
    crop_scale: float = 0.5  # RandomResizedCrop keeps [crop_scale, 1] of the frame's area; 1: no crop (UMT: 0.5)
    flip_p: float = 0.5  # horizontal flip probability (UMT: 0.5)
    # ---- optimisation
    epochs: float = 10
    max_steps: int = 0  # >0 overrides epochs
    lr: float = 1e-4
    min_lr_ratio: float = 0.01  # cosine floor = min_lr_ratio * lr
    warmup_epochs: float = 1.0
    warmup_steps: int = -1  # >=0 overrides warmup_epochs
    weight_decay: float = 0.02
    beta1: float = 0.9
    beta2: float = 0.999
    grad_clip: float = 1.0  # max global gradient norm; 0: off (one loss spike can collapse an unclipped run)
    # bf16 | fp16 (with GradScaler) | fp32 | auto (bf16 on a GPU, and on a CPU whose bf16 measures faster; else fp32)
    precision: str = "bf16"
    # ---- losses
    loss_vtc: float = 1.0
    loss_vtm: float = 1.0
    loss_mlm: float = 1.0
    mlm_prob: float = 0.5
    vtm_hard_neg: bool = True
    same_caption_positive: bool = True  # identical captions in a batch are positives (VTC), never VTM negatives
    mask_type: str = ""  # "" (no video token masking) | random | tube | row
    mask_ratio: float = 0.0
    mask_steps: int = 0  # >0: only the first mask_steps steps are masked (with the teacher), then UMT's unmasked phase
    text_start: int = 0  # UMT's stage 1: the steps before it train the video encoder alone on teacher losses (no text)
    stage_lr_restart: bool = True  # with text_start: each stage has its own warm-up and cosine (UMT's two runs)
    vl_mask_ratio: float = -1.0  # mask ratio from text_start on (UMT's stage 2 masks 50%); -1: mask_ratio throughout
    teacher: str = ""  # frozen teacher model (vtr folder / weight name / architecture:path) for distillation
    loss_distill: float = 1.0  # the student's final features -> the teacher's (VideoMamba self-distillation)
    loss_uta: float = 0.0  # UMT unmasked token alignment: visible student tokens (clip_decoder) -> teacher tokens
    vtm_start: int = 0  # first step with VTM (steps before: its compute is skipped)
    mlm_start: int = 0  # first step with MLM
    loss_ramp: int = 0  # steps over which VTM/MLM weights rise linearly from 0 after their start
    vtm_samples: int = 0  # positives per rank per step for VTM (3x pairs with the hard negatives); 0: the batch
    mlm_samples: int = 0  # captions per rank per step for MLM; 0: the batch
    # ---- ranking stage: after the last step, the fusion layers and ITM head alone (encoders frozen) learn to rank
    # each text's k ITC candidates (and each video's) with a listwise loss, the ranking the ITM row reads
    rank_steps: int = 0  # steps of the ranking stage after the last step (encoders frozen); 0: off
    rank_lr: float = 2e-4  # its learning rate (warm-up over 5% of its steps, then cosine down to a tenth)
    rank_k: int = 4  # candidates per query: the positive and the k-1 hardest by ITC in the batch
    rank_v2t: bool = True  # also each video against its k texts; False: text queries alone (the app's direction)
    # ---- stability: a run that diverges stops with an error and exports nothing
    max_nonfinite: int = 10  # consecutive steps with a non-finite loss or gradient (each is skipped) before stopping
    collapse_window: int = 20  # steps of VTC loss back at chance, ln(global batch), after it had fallen: stop; 0: off
    # ---- logging, checkpoints, evaluation
    log_every: int = 10
    ckpt_every: int = 1000  # steps; a checkpoint is also written at the end (0: only there)
    stop_after: int = 0  # >0: stop (after checkpointing) at this step, keeping the schedule of the full run
    eval_every: int = 0  # steps; 0: off
    eval_annotation: str = ""
    eval_videos: str = ""
    eval_k_test: int = 128  # candidates the matching head re-ranks per query (UMT's k_test); fewer for small splits
    tensorboard: bool = True  # when installed


def _convert(value, hint):
    if value is None:
        return None
    if hint is bool:
        if isinstance(value, bool):
            return value
        s = str(value).lower()
        if s in ("1", "true", "yes", "on"):
            return True
        if s in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"not a boolean: {value!r}")
    if hint is int:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"not an integer: {value!r}")
        return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
    if hint is float:
        return float(value)
    return str(value)


def apply_overrides(cfg: TrainConfig, overrides: dict, source: str) -> TrainConfig:
    hints = typing.get_type_hints(TrainConfig)
    unknown = sorted(set(overrides) - set(hints))
    if unknown:
        raise ValueError(f"unknown config key(s) in {source}: {', '.join(unknown)}; valid keys: "
                         f"{', '.join(f.name for f in dataclasses.fields(TrainConfig))}")
    converted = {}
    for key, value in overrides.items():
        try:
            converted[key] = _convert(value, hints[key])
        except (TypeError, ValueError) as e:
            raise ValueError(f"{source}: bad value for {key} ({hints[key].__name__}): {e}") from e
    return dataclasses.replace(cfg, **converted)


def parse_flags(argv: list[str]) -> dict:
    """``["--lr", "3e-4", "--grad_checkpointing", "--no-tensorboard"]`` -> dict; a flag without a value is True."""
    out, i = {}, 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            raise ValueError(f"expected --key value, got {arg!r}")
        key, eq, value = arg[2:].partition("=")
        key = key.replace("-", "_")
        if eq:
            out[key] = value
            i += 1
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            out[key] = argv[i + 1]
            i += 2
        elif key.startswith("no_"):
            out[key[3:]] = False
            i += 1
        else:
            out[key] = True
            i += 1
    return out


def load_config(path: str | None = None, argv: list[str] | None = None, overrides: dict | None = None) -> TrainConfig:
    """Defaults <- YAML file <- ``overrides`` dict <- ``--key value`` flags."""
    import yaml

    cfg = TrainConfig()
    if path:
        data = yaml.safe_load(Path(path).read_text()) or {}
        cfg = apply_overrides(cfg, data, str(path))
    if overrides:
        cfg = apply_overrides(cfg, overrides, "overrides")
    if argv:
        cfg = apply_overrides(cfg, parse_flags(argv), "command line")
    return cfg


def config_help() -> str:
    """Every config key with its type, default and the comment beside it in :class:`TrainConfig` (``--help``)."""
    import inspect
    import re

    comments, section, lines = {}, {}, []
    current = ""
    for line in inspect.getsource(TrainConfig).splitlines():
        if m := re.match(r"\s+# ---- (.*)", line):
            current = m.group(1)
        elif m := re.match(r"\s+(\w+): [^=]+=[^#]*(?:#\s*(.*))?$", line):
            comments[m.group(1)], section[m.group(1)] = (m.group(2) or "").strip(), current
    hints = typing.get_type_hints(TrainConfig)
    shown = None
    for f in dataclasses.fields(TrainConfig):
        if section.get(f.name) != shown:
            shown = section.get(f.name)
            lines.append(f"\n{shown}:")
        flag = f"  --{f.name} {hints[f.name].__name__.upper()}"
        lines.append(f"{flag:34s} {comments.get(f.name, '')} (default: {f.default!r})")
    return "\n".join(lines)


def to_dict(cfg: TrainConfig) -> dict:
    return dataclasses.asdict(cfg)
