"""UMT-style video-text pretraining (VTC + VTM + MLM, optional distillation and token masking), one readable loop.

    python -m pretrain.train --config pretrain/configs/tiny_cpu.yaml [--key value ...] [--resume]
    torchrun --nproc-per-node 8 -m pretrain.train --config pretrain/configs/videomamba_m16_5M.yaml
    torchrun --nnodes 4 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 -m pretrain.train ...

Writes to ``out_dir``: ``config.yaml`` (resolved), ``log.jsonl``, ``checkpoint.pt`` (model, optimizer, scheduler,
scaler, step, RNG states and loader positions of every rank, resolved config; written atomically), and at the end
``model/`` in vtr's format (``vtr.create_model(out_dir + "/model")``). Recipe and facts: pretraining.md.

Reproducibility: the data order and every random draw of step s on rank r (frame sampling, crops, MLM and token
masks, VTM negatives, dropout) are pure functions of (seed, s, r), so ``--resume`` continues with the losses an
uninterrupted run would have had (bit-identical on CPU), and two runs of one config on one machine and thread count
give the same model bit for bit on the CPU (the matching pairs gather with ``vtr.losses.gather_rows``, whose backward
sums in a fixed order).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import math
import os
import random
import re
import shutil
import signal
import sys
import threading
import time
import warnings
from collections import deque
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from pretrain.config import TrainConfig, load_config, to_dict
from pretrain.guard import DivergenceGuard, mean_pairwise_cosine
from vtr import losses as L
from vtr.atomic import atomic_path
from vtr.data.shards import _seed, count_shard_samples, make_train_loader
from vtr.device import resolve_device
from vtr.errors import VtrError, disk_full
from vtr.masking import apply_keep
from vtr.models.bert import trim_padding

logger = logging.getLogger("pretrain")
VTM_CHANCE = -(math.log(1 / 3) / 3 + 2 * math.log(2 / 3) / 3)  # label entropy: 1 positive per 2 negatives
ITM_LEARNED_FRACTION = 0.9
RANK_LEARNED_FRACTION = 0.5  # the ranking stage's loss against its chance value (trials: 0.31-0.39 at the end)
CAPTION_SAMPLE = 2000  # training captions whose token lengths set max_txt_l (fit_text_length)
NO_DECAY_NAMES = ("pos_embed", "cls_token", "temporal_pos_embedding", "temp")


def get_lr(step: int, cfg: TrainConfig, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up to ``lr``, then per-step cosine down to ``min_lr_ratio * lr``.

    With ``text_start`` and ``stage_lr_restart`` the two stages are scheduled as UMT runs them, as two runs: the
    video-only stage warms up and decays over its own steps, and the text stage does again over the rest (the text
    encoder's first step is then at a warm-up rate, not at the middle of one long cosine)."""
    if cfg.text_start and cfg.stage_lr_restart:
        if step < cfg.text_start:
            total_steps = cfg.text_start
            warmup_steps = min(warmup_steps, cfg.text_start // 2)
        else:
            step, total_steps = step - cfg.text_start, total_steps - cfg.text_start
            warmup_steps = min(warmup_steps, total_steps // 2)
    min_lr = cfg.lr * cfg.min_lr_ratio
    if step < warmup_steps:
        return cfg.lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr + 0.5 * (cfg.lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases, norms, 1-D parameters, position embeddings, [CLS] and the temperature."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        skip = p.ndim < 2 or name.endswith(".bias") or "norm" in name.lower() or name.split(".")[-1] in NO_DECAY_NAMES
        (no_decay if skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def loss_weight(step: int, weight: float, start: int, ramp: int) -> float:
    """A loss's weight at ``step``: 0 before ``start``, then rising linearly to ``weight`` over ``ramp`` steps."""
    if weight == 0 or step < start:
        return 0.0
    return weight * min(1.0, (step - start + 1) / ramp) if ramp > 0 else weight


class Pretrainer(nn.Module):
    """Every loss of one step in a single ``forward``, so DDP sees one call per step.

    Returns the weighted ``loss`` and each computed term (``vtc``, ``vtm``, ``mlm``, ``distill``, ``uta``);
    a term whose weight is 0 at this step is not computed at all."""

    def __init__(self, model, tokenizer, cfg: TrainConfig, rank: int, world_size: int):
        super().__init__()
        self.model, self.cfg, self.rank, self.world_size = model, cfg, rank, world_size
        self.mask_id, self.pad_id, self.cls_id = tokenizer.mask_token_id, tokenizer.pad_token_id, tokenizer.cls_token_id

    def weights(self, step: int) -> dict:
        cfg = self.cfg
        text = step >= cfg.text_start  # before it (UMT's stage 1) only the video-only teacher losses run
        return {"vtc": cfg.loss_vtc if text else 0.0,
                "vtm": loss_weight(step, cfg.loss_vtm, max(cfg.vtm_start, cfg.text_start), cfg.loss_ramp),
                "mlm": loss_weight(step, cfg.loss_mlm, max(cfg.mlm_start, cfg.text_start), cfg.loss_ramp),
                "distill": cfg.loss_distill, "uta": cfg.loss_uta}

    def forward(self, frames, input_ids, attention_mask, generator, step: int = 0, keep=None, teacher=None):
        """teacher: the frozen teacher's ``encode_video(frames, return_tokens=True)`` output, or None."""
        m, cfg, w = self.model, self.cfg, self.weights(step)
        uta = teacher is not None and w["uta"] > 0
        # Captions come padded to max_txt_l; every text pass below (text mode, VTM fusion, MLM) reads real tokens
        # only, so the columns that are padding in the whole batch are dropped once, here: less work, same losses.
        input_ids, attention_mask = trim_padding(input_ids, attention_mask)
        # frame_embeds [B,T,E], tokens [B,K,D] (K visible), clip_input [B,1+K,D]
        vid = m.encode_video(frames, return_tokens=True, keep=keep, return_clip_input=uta)
        out = {}
        if step >= cfg.text_start:  # the text side (VTC always with it: the guard reads it, even at weight 0)
            txt = m.encode_text(input_ids, attention_mask)  # embedding [B,E], hidden [B,L,H]
            ids = L.caption_ids(input_ids, attention_mask) if cfg.same_caption_positive else None
            out["vtc"] = L.vtc_loss(vid.frame_embeds, txt.embedding, m.temp, ids=ids, rank=self.rank,
                                    world_size=self.world_size)
            self.last_embeddings = (vid.embedding.detach(), txt.embedding.detach())  # for the guard's log
        if w["vtm"]:
            n = min(cfg.vtm_samples or len(input_ids), len(input_ids))
            with torch.no_grad():  # hard negatives from the local similarities, drawn on the CPU generator
                sim_v2t, sim_t2v = L.get_sim(vid.frame_embeds.float().cpu(), txt.embedding.float().cpu(), m.temp.cpu())
                neg_v, neg_t = L.vtm_hard_negatives(sim_v2t, sim_t2v, None if ids is None else ids.cpu(),
                                                    generator=generator, hard=cfg.vtm_hard_neg)
                vi, ti = (i.to(frames.device) for i in L.vtm_pair_indices(neg_v[:n], neg_t[:n]))
            cls = m.fusion_cls(L.gather_rows(txt.hidden, ti), attention_mask[ti], L.gather_rows(vid.tokens, vi))
            out["vtm"] = L.vtm_loss(m.itm_head(cls))
        if w["mlm"]:
            n = min(cfg.mlm_samples or len(input_ids), len(input_ids))
            ids, labels = L.mlm_mask(input_ids[:n], attention_mask[:n], m.cfg.text.vocab_size, self.mask_id,
                                     self.pad_id, self.cls_id, prob=cfg.mlm_prob, generator=generator)
            selected = labels != -100
            logits = m.mlm_logits(ids, attention_mask[:n], vid.tokens[:n], positions=selected)
            out["mlm"] = L.mlm_loss(logits, labels[selected])
        if teacher is not None and w["distill"]:  # self-distillation: final features -> the frozen teacher's
            out["distill"] = L.distillation_loss(vid.frame_embeds, teacher.frame_embeds)
        if uta:  # UMT: each visible student token, through clip_decoder, -> the teacher's token at that position
            target = teacher.tokens if keep is None else apply_keep(teacher.tokens, keep)
            pos = m.vision_encoder.clip_position_table(teacher.tokens.shape[1], keep)
            student = m.vision_encoder.align_to_teacher(vid.clip_input, pos=pos)[:, 1:]  # drop cls
            out["uta"] = L.uta_loss(student, target)
        out["loss"] = sum(w[k] * v for k, v in out.items())
        return out


def batch_spread(pretrainer: "Pretrainer") -> dict:
    """Mean pairwise cosine of the last step's local video and text embeddings (1.0: one direction for all)."""
    video, text = pretrainer.last_embeddings
    return {"video_cos": round(mean_pairwise_cosine(torch.nn.functional.normalize(video.float(), dim=-1)), 4),
            "text_cos": round(mean_pairwise_cosine(text), 4)}


def video_keep_mask(cfg: TrainConfig, model, batch: int, num_frames: int, img_size: int, generator, step: int = 0):
    """keep [B, T*P] for the masked student at ``step``, or None."""
    ratio = cfg.vl_mask_ratio if cfg.vl_mask_ratio >= 0 and step >= cfg.text_start else cfg.mask_ratio
    if not cfg.mask_type or ratio <= 0:
        return None
    from vtr import masking

    grid = img_size // model.cfg.vision.patch_size
    if cfg.mask_type == "row":
        return masking.row_mask(batch, num_frames, grid, grid, ratio, generator=generator)
    fn = {"random": masking.random_mask, "tube": masking.tube_mask}[cfg.mask_type]
    return fn(batch, num_frames, grid * grid, ratio, generator=generator)


def build_model(cfg: TrainConfig, teacher=None):
    """Student (with the MLM head) from the registry: an architecture, a released checkpoint or a vtr folder.
    With token alignment (``loss_uta``) its ``clip_decoder`` maps to the teacher's token width and is trained."""
    import vtr
    from vtr.models.registry import WEIGHTS, load_named_model

    overrides = {k: v for k, v in {"num_frames": cfg.num_frames, "img_size": cfg.img_size,
                                   "max_txt_l": cfg.max_txt_l}.items() if v}
    if cfg.text_weights:
        overrides["text_weights"] = cfg.text_weights
    if cfg.grad_checkpointing:
        overrides["grad_checkpointing"] = True
    uta = teacher is not None and cfg.loss_uta > 0
    if uta and not cfg.init:
        overrides["clip_output_dim"] = teacher.cfg.vision.embed_dim
    if cfg.init in WEIGHTS:  # a released checkpoint: its architecture, with its weights
        model = load_named_model(cfg.init, with_mlm_head=True, **overrides)
    else:  # the architecture cfg.model, from a checkpoint path or at random init
        model = vtr.create_model(cfg.model, pretrained=cfg.init or None, with_mlm_head=True, **overrides)
    if uta and model.cfg.vision.clip_output_dim != teacher.cfg.vision.embed_dim:
        raise SystemExit(f"loss_uta: the student's clip_decoder maps to {model.cfg.vision.clip_output_dim} but the "
                         f"teacher's tokens are {teacher.cfg.vision.embed_dim} wide; start the student from scratch")
    if cfg.grad_checkpointing:
        model.text_encoder.gradient_checkpointing = True
    # Without token alignment the CLIP-teacher decoder is unused: keep it out of the optimizer and DDP.
    model.vision_encoder.clip_decoder.requires_grad_(uta)
    return model.train()


def fit_text_length(cfg: TrainConfig, model, tokenizer, log: bool = True) -> int:
    """Captions longer than ``max_txt_l`` tokens lose their end, often the words that tell clips apart ("... moves
    counterclockwise"). With ``max_txt_l: 0`` the model's length is raised to the longest of a sample of the
    training captions (at most the text encoder's positions), so the exported model reads them whole in eval and
    search too; a length set in the config is kept, with a warning saying how many captions it cuts. Every rank
    samples the same captions, so all agree. Returns the length used."""
    import dataclasses

    from vtr.data.shards import sample_captions

    have = model.preprocess.max_txt_l
    captions = sample_captions([u for u in (cfg.train_shards, cfg.image_shards) if u], CAPTION_SAMPLE)
    if not captions:
        return have
    lengths = [len(ids) for ids in tokenizer(captions)["input_ids"]]  # [CLS] and [SEP] included
    need, cut = max(lengths), sum(n > have for n in lengths)
    if not cut:
        return have
    limit = model.cfg.text.max_position_embeddings
    if cfg.max_txt_l or have >= limit:
        if log:
            logger.warning("%d of %d sampled training captions are longer than max_txt_l %d (the longest needs %d "
                           "tokens) and lose their end; %s", cut, len(captions), have, need,
                           f"set max_txt_l: {min(need, limit)} to keep them" if have < limit else
                           f"the text encoder has only {limit} positions")
        return have
    new = min(need, limit)
    pre = dataclasses.replace(model.preprocess, max_txt_l=new)
    model.cfg = dataclasses.replace(model.cfg, preprocess=pre)
    model.preprocess = pre
    if log:
        logger.info("max_txt_l %d -> %d: %d of %d sampled training captions need more than %d tokens (the longest "
                    "%d); the exported model reads %d", have, new, cut, len(captions), have, need, new)
    return new


def build_teacher(cfg: TrainConfig, device):
    from vtr.models.registry import load_named_model

    teacher = load_named_model(cfg.teacher)
    return teacher.to(device).eval().requires_grad_(False)


def maybe_evaluate(model, tokenizer, cfg: TrainConfig, step: int, device, precision: str = "fp32") -> dict | None:
    """Zero-shot retrieval on ``eval_annotation`` + ``eval_videos`` through ``vtr.eval.retrieval`` (if present)."""
    if not (cfg.eval_annotation and cfg.eval_videos):
        logger.info("eval_every set but eval_annotation/eval_videos are not: skipping evaluation")
        return None
    try:
        from vtr.data.retrieval import RetrievalVideos, load_retrieval_split
        from vtr.eval.retrieval import evaluate_retrieval
    except ImportError as e:
        logger.info("zero-shot evaluation skipped: %s", e)
        return None
    pre = model.preprocess
    split = load_retrieval_split("msrvtt", annotation_file=cfg.eval_annotation, video_dir=cfg.eval_videos)
    videos = RetrievalVideos(split, num_frames=pre.num_frames, transform=pre.eval_transform())
    result = evaluate_retrieval(model, split.texts, videos, split.txt2video, split.video2txt,
                                lambda texts: pre.tokenize(tokenizer, texts),
                                cache_dir=Path(cfg.out_dir) / "eval" / f"step{step:08d}", workers=0, device=device,
                                k_test=cfg.eval_k_test,
                                bf16=precision == "bf16" and device.type == "cuda")
    model.train()
    return result.rows


def save_checkpoint(path: Path, state: dict) -> None:
    then = ("the checkpoint before is kept: free some space, then run again with --resume" if path.is_file() else
            "free some space, then run again")
    with space_said(path, state, then):
        with atomic_path(path) as tmp:  # a crash never leaves a half-written checkpoint
            torch.save(state, tmp)


@contextmanager
def space_said(path: Path, state, then: str):
    """A write of ``state``'s tensors to ``path`` that fails on a full disk raises VtrError saying so (torch.save then
    fails with "unexpected pos 576 vs 534", safetensors with an I/O error); other failures pass as they are."""
    try:
        free = shutil.disk_usage(Path(path).parent).free  # before: the failed write's file holds space until freed
    except OSError:
        free = None
    try:
        yield
    except (OSError, RuntimeError) as e:
        need = _tensor_bytes(state)
        if not disk_full(e) and (free is None or free >= need):
            raise
        room = f"{free / 2**20:.0f} MiB free, " if free is not None else ""
        raise VtrError(f"cannot write {path}: no space left on its disk ({room}about {need / 2**20:.0f} MiB "
                       f"needed); {then}") from e


def _tensor_bytes(obj) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def gather_objects(obj, world_size: int) -> list:
    if world_size == 1:
        return [obj]
    out = [None] * world_size
    dist.all_gather_object(out, obj)
    return out


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    np.random.set_state(s["numpy"])
    random.setstate(s["python"])
    if s.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


# ------------------------------------------------------------------------------------------------ the run's parts
@dataclasses.dataclass
class Runtime:
    """Rank-derived variables (torchrun's environment), the device, and one autocast context for every precision."""

    ddp: bool
    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    precision: str  # what runs: fp16 becomes fp32 on the CPU
    ctx: object  # autocast for bf16/fp16, nullcontext for fp32
    scaler: torch.amp.GradScaler  # enabled for fp16 only

    @property
    def master(self) -> bool:  # the rank that logs, evaluates, writes the checkpoint and exports
        return self.rank == 0


TRAIN_PRECISIONS = ("auto", "bf16", "fp16", "fp32")


def training_precision(requested: str, device, ddp: bool = False) -> str:
    """What a run computes in: ``auto`` is bf16 on a GPU that has it (else fp16) and on a CPU whose bf16 GEMMs
    measure faster than fp32 (``vtr.precision``: native bf16, probed once per CPU model), else fp32; fp16 becomes
    fp32 on the CPU (no fp16 autocast there). Under torchrun every rank takes rank 0's answer (a probe is a
    measurement; ranks must not train in different precisions)."""
    if requested not in TRAIN_PRECISIONS:
        raise SystemExit(f"precision must be one of {', '.join(TRAIN_PRECISIONS)}, got {requested!r}")
    if requested == "auto":
        from vtr.precision import resolve_precision  # what eval and the index run in: one rule for all

        precision = resolve_precision("auto", device)
        if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            precision = "fp16"  # training has fp16 with a GradScaler where a GPU lacks bf16
        if ddp:
            choice = torch.tensor([TRAIN_PRECISIONS.index(precision)], device=device)
            dist.broadcast(choice, 0)
            precision = TRAIN_PRECISIONS[int(choice.item())]
        return precision
    return requested if (device.type == "cuda" or requested != "fp16") else "fp32"


DIST_TIMEOUT = datetime.timedelta(hours=2)  # how long a rank waits in a collective for the others


def setup_runtime(cfg: TrainConfig) -> Runtime:
    """Joins torchrun's process group (if launched by it), picks the device and precision, seeds the model init."""
    ddp = int(os.environ.get("RANK", -1)) != -1
    rank, local_rank, world_size = (int(os.environ[k]) for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE")) if ddp else (0, 0, 1)
    # "gpu" ran on the CPU without a word, and "cuda" on a machine without one was a traceback from torch
    try:
        requested = resolve_device(cfg.device)
    except VtrError as e:
        raise SystemExit(str(e)) from None
    use_cuda = requested.type == "cuda"
    # under torchrun each rank takes the GPU of its local rank; alone, the one named (cuda:1), else the first
    gpu = local_rank if ddp or requested.index is None else requested.index
    device = torch.device(f"cuda:{gpu}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if ddp:
        # Rank 0 evaluates alone (eval_every) while the others wait in their next collective: NCCL's default 10
        # minutes would end the run during a full MSRVTT evaluation.
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", timeout=DIST_TIMEOUT)
    if rank == 0:
        Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    if use_cuda:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    precision = training_precision(cfg.precision, device, ddp)
    ptdtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]
    ctx = nullcontext() if precision == "fp32" else torch.autocast(device_type=device.type, dtype=ptdtype)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    return Runtime(ddp, rank, local_rank, world_size, device, precision, ctx, scaler)


def wrap_ddp(pretrainer: Pretrainer, cfg: TrainConfig, rt: Runtime) -> nn.Module:
    """DDP over the pretrainer under torchrun; unused-parameter search only when some loss can be off in a step."""
    if not rt.ddp:
        return pretrainer
    every_param_used = (cfg.loss_vtm and cfg.loss_mlm and not (cfg.vtm_start or cfg.mlm_start)
                        and not (cfg.loss_uta and cfg.mask_steps) and not cfg.text_start)
    return nn.parallel.DistributedDataParallel(pretrainer, device_ids=[rt.local_rank] if rt.device.type == "cuda"
                                               else None, find_unused_parameters=not every_param_used)


@dataclasses.dataclass
class Schedule:
    """How long the run is and which modality each step reads: steps are all-video or all-image."""

    seed: int
    global_batch: int
    steps_per_epoch: dict  # modality -> steps per epoch
    total_steps: int
    warmup_steps: int

    @property
    def epoch_steps(self) -> int:
        return sum(self.steps_per_epoch.values())

    def modality_of(self, step: int) -> str:
        """Shared by all ranks: a function of (seed, step) only."""
        image_share = self.steps_per_epoch.get("image", 0) / self.epoch_steps
        return "image" if random.Random(_seed(self.seed, step, 7)).random() < image_share else "video"


def shard_sources(cfg: TrainConfig) -> dict:
    """modality -> (shard urls, samples per epoch over all ranks; 0: count them)."""
    return {"video": (cfg.train_shards, cfg.samples_per_epoch), "image": (cfg.image_shards, cfg.image_samples_per_epoch)}


def plan_schedule(cfg: TrainConfig, world_size: int) -> Schedule:
    global_batch = cfg.batch_size * world_size
    steps_per_epoch = {}
    for modality, (urls, samples) in shard_sources(cfg).items():
        if urls:
            steps_per_epoch[modality] = max(1, (samples or count_shard_samples(urls)) // global_batch)
    if not steps_per_epoch:
        raise SystemExit("no training data: set train_shards (and/or image_shards)")
    epoch_steps = sum(steps_per_epoch.values())
    total_steps = cfg.max_steps or int(cfg.epochs * epoch_steps)
    warmup_steps = cfg.warmup_steps if cfg.warmup_steps >= 0 else int(cfg.warmup_epochs * epoch_steps)
    return Schedule(cfg.seed, global_batch, steps_per_epoch, total_steps, warmup_steps)


def make_guard(cfg: TrainConfig, global_batch: int) -> DivergenceGuard:
    return DivergenceGuard(global_batch, cfg.collapse_window, cfg.max_nonfinite, advice=(
        f"Lower the learning rate (lr is {cfg.lr:g}: try {cfg.lr / 3:.2g})"
        + ("" if cfg.grad_clip > 0 else " and clip gradients (--grad_clip 1.0)")
        + f", or resume from an earlier checkpoint in {cfg.out_dir} with --resume and the lower lr."))


def make_loaders(cfg: TrainConfig, schedule: Schedule, tokenizer, pre, rank: int, states: dict) -> dict:
    """modality -> this rank's :class:`vtr.data.shards.TrainLoader`, at the positions ``states`` (resume) hold."""
    num_frames, sources = {"video": pre.num_frames, "image": 1}, shard_sources(cfg)
    return {m: make_train_loader(sources[m][0], tokenizer, cfg.batch_size, n, num_frames=num_frames[m],
                                 img_size=pre.img_size, max_txt_l=pre.max_txt_l, modality=m, seed=cfg.seed,
                                 rank=rank, num_workers=cfg.num_workers, shards_per_chunk=cfg.shards_per_chunk,
                                 shuffle_buffer=cfg.shuffle_buffer, preprocess=pre,
                                 crop_scale=cfg.crop_scale, flip_p=cfg.flip_p, state=states.get(m),
                                 decode_cache_mb=cfg.decode_cache_mb)
            for m, n in schedule.steps_per_epoch.items()}


def endless(loader):
    while True:
        yield from loader  # one epoch (fixed length) per pass


def resume_from(path: Path, rt: Runtime, raw_model, optimizer, scheduler, guard) -> tuple[int, dict]:
    """Loads ``checkpoint.pt`` (if there is one) into the run; returns (step, this rank's loader positions)."""
    if not path.is_file():
        if rt.master:
            logger.info("--resume: no checkpoint at %s, starting from scratch", path)
        return 0, {}
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    raw_model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    rt.scaler.load_state_dict(ckpt["scaler"])
    step, loader_states = ckpt["step"], {}
    if "guard" in ckpt:
        guard.load_state(ckpt["guard"])
    if ckpt["world_size"] == rt.world_size:
        set_rng_state(ckpt["rng"][rt.rank])
        loader_states = ckpt["loaders"][rt.rank]
    else:
        logger.warning("resuming with %d ranks (checkpoint: %d): data positions restart", rt.world_size, ckpt["world_size"])
    if rt.master:
        logger.info("resumed from %s at step %d", path, step)
    return step, loader_states


def write_checkpoint(path: Path, rt: Runtime, cfg: TrainConfig, step: int, raw_model, optimizer, scheduler, guard,
                     loaders: dict) -> None:
    """Every rank's RNG states and loader positions, gathered (a collective: all ranks call it); the master writes."""
    rngs = gather_objects(rng_state(), rt.world_size)
    loader_pos = gather_objects({m: ld.state_dict() for m, ld in loaders.items()}, rt.world_size)
    if rt.master:
        save_checkpoint(path, {
            "model": raw_model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": rt.scaler.state_dict(), "step": step,
            "config": to_dict(cfg), "world_size": rt.world_size, "rng": rngs, "loaders": loader_pos,
            "guard": guard.state(),
        })


class RunLog:
    """The master's records: ``config.yaml``, ``log.jsonl`` and (optionally) TensorBoard; silent on other ranks."""

    def __init__(self, cfg: TrainConfig, master: bool):
        self.file = self.tb = None
        if not master:
            return
        import yaml

        out_dir = Path(cfg.out_dir)
        self.file = open(out_dir / "log.jsonl", "a")
        (out_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        if cfg.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out_dir / "tb"))
            except ImportError:
                logger.info("tensorboard not installed: logging to log.jsonl only")

    def write(self, record: dict, scalars: bool = False) -> None:
        """One line of ``log.jsonl``; ``scalars``: its numbers also go to TensorBoard as ``train/<key>``."""
        if self.file is None:
            return
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if scalars and self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)):
                    self.tb.add_scalar(f"train/{k}", v, record["step"])

    def close(self) -> None:
        for f in (self.file, self.tb):
            if f is not None:
                f.close()


def step_inputs(cfg: TrainConfig, batch: dict, step: int, rt: Runtime, raw_model, teacher) -> dict:
    """The pretrainer's arguments for ``step``. Every random draw of the step (dropout included) is seeded here
    as a function of (seed, step, rank): the masks, the generator for VTM negatives and MLM, the global seed."""
    frames = batch["frames"].to(rt.device, non_blocking=True)
    input_ids, attn = batch["input_ids"].to(rt.device), batch["attention_mask"].to(rt.device)
    torch.manual_seed(_seed(cfg.seed, step, rt.rank, 1))
    gen = torch.Generator().manual_seed(_seed(cfg.seed, step, rt.rank, 2))
    masked_phase = not cfg.mask_steps or step < cfg.mask_steps
    keep = video_keep_mask(cfg, raw_model, frames.shape[0], frames.shape[1], frames.shape[-1], gen, step) \
        if masked_phase else None
    teacher_out = None
    if teacher is not None and masked_phase:
        with torch.no_grad(), rt.ctx:
            teacher_out = teacher.encode_video(frames, return_tokens=cfg.loss_uta > 0)
    return {"frames": frames, "input_ids": input_ids, "attention_mask": attn, "generator": gen, "step": step,
            "keep": None if keep is None else keep.to(rt.device), "teacher": teacher_out}


def optimizer_step(cfg: TrainConfig, step: int, loss_value: float, raw_model, optimizer, scheduler,
                   scaler, guard) -> float:
    """Clips, steps (unless the guard skips a non-finite step), advances the schedule; returns the gradient norm."""
    scaler.unscale_(optimizer)
    # The norm is taken after DDP's all-reduce: every rank sees the same value and skips the same steps.
    grad_norm = torch.nn.utils.clip_grad_norm_(raw_model.parameters(), cfg.grad_clip or math.inf).item()
    if scaler.is_enabled() and math.isfinite(loss_value):
        scaler.step(optimizer)  # fp16: an overflowing gradient is the scaler's to skip, not a divergence
        skipped = False
    else:
        skipped = not guard.step_is_finite(step + 1, loss_value, grad_norm)
        if not skipped:
            scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    with warnings.catch_warnings():  # a skipped step still advances the schedule, as it advances the data
        if skipped:
            warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
        scheduler.step()
    return grad_norm


class RunStopped(KeyboardInterrupt):
    """The run stopped on a signal, after a checkpoint of its last step (``--resume`` goes on from there)."""


class StopRequests:
    """Ctrl+C (SIGINT) or SIGTERM (a scheduler ending or preempting the job; torchrun passes either on to its
    ranks) while the steps run: the step in flight finishes, a checkpoint of it is written and the run stops, so
    that ``--resume`` loses nothing. Before, the steps since the last ``ckpt_every`` checkpoint were lost (up to
    2,000 in the release configs). A second signal stops at once (``KeyboardInterrupt``). The handlers are
    installed in the main thread only, and only for the steps: the ranking stage and the export stop at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, master: bool):
        self.master, self.name, self._previous = master, None, {}

    def install(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def release(self) -> None:
        """Put back the handlers there were before (a second call does nothing)."""
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        if self.name is not None:
            raise KeyboardInterrupt
        self.name = signal.Signals(signum).name
        if self.master:  # a plain write: a handler that logged could run inside the logger's own write
            os.write(2, f"\n{self.name}: stopping after this step with a checkpoint (again: stop at once, without "
                        "one)\n".encode())

    def agreed(self, rt: Runtime) -> bool:
        """Whether any rank was asked to stop (a collective under DDP: every rank stops after the same step)."""
        asked = self.name is not None
        if not rt.ddp:
            return asked
        flag = torch.tensor([int(asked)], device=rt.device)  # NCCL reduces CUDA tensors only
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())


def mean_over_ranks(out: dict, loaders: dict, rt: Runtime) -> tuple[dict, int]:
    """The step's loss terms averaged over ranks, and the corrupt samples all ranks skipped so far (a collective)."""
    values = torch.stack([v.detach().float() for v in out.values()])
    if rt.ddp:
        dist.all_reduce(values)
        values /= rt.world_size
    # on the run's device: NCCL reduces CUDA tensors only (a CPU tensor stopped the first logged step on a GPU)
    corrupt = torch.tensor([sum(ld.num_corrupt for ld in loaders.values())], dtype=torch.long, device=rt.device)
    if rt.ddp:
        dist.all_reduce(corrupt)
    return {k: v.item() for k, v in zip(out, values)}, int(corrupt.item())


def cache_record(loaders: dict) -> dict:
    """The decoded-clip cache's hit rate on this rank, for the log (nothing when the cache is off)."""
    rates = {m: ld.cache_hit_rate for m, ld in loaders.items() if ld.cache_hit_rate is not None}
    return {f"decode_cache_hits_{m}": round(r, 3) for m, r in rates.items()}


class Ranker(nn.Module):
    """The ranking stage's step in one ``forward`` (one DDP call): the frozen encoders' outputs without gradients,
    then the fusion layers over each text's k ITC candidates and each video's (``L.ranking_pairs``), scored by
    the ITM head under ``L.ranking_loss``. Returns the loss and [D, n] hits of ITC and of the ITM re-ranking."""

    def __init__(self, model, k: int, same_caption_positive: bool = True, v2t: bool = True):
        super().__init__()
        self.model, self.k, self.same_caption_positive, self.v2t = model, k, same_caption_positive, v2t

    def forward(self, frames, input_ids, attention_mask):
        m = self.model
        input_ids, attention_mask = trim_padding(input_ids, attention_mask)  # as in Pretrainer.forward
        with torch.no_grad():
            vid = m.encode_video(frames, return_tokens=True)
            txt = m.encode_text(input_ids, attention_mask)
            sim_v2t, _ = L.get_sim(vid.frame_embeds.float(), txt.embedding.float(), m.temp)
            ids = L.caption_ids(input_ids, attention_mask) if self.same_caption_positive else None
            pairs = L.ranking_pairs(sim_v2t, self.k, ids, v2t=self.v2t)
        cls = m.fusion_cls_pairs(txt.hidden, attention_mask, vid.tokens, pairs["text_idx"], pairs["video_idx"])
        loss, itm_hit = L.ranking_loss(m.itm_head(cls), pairs)
        return {"loss": loss, "itc_hit": pairs["itc_hit"], "itm_hit": itm_hit, "chance": L.ranking_chance(pairs)}


def ranking_parameters(model) -> list:
    """What the ranking stage trains: the fusion layers (``text.fusion_layer`` on) and the ITM head."""
    first = model.cfg.text.fusion_layer
    return list(model.itm_head.parameters()) + [
        p for n, p in model.text_encoder.named_parameters()
        if n.startswith("encoder.layer.") and int(n.split(".")[2]) >= first]


def ranking_stage(cfg: TrainConfig, rt: Runtime, raw_model, stream, log: "RunLog", guard, first_step: int) -> dict:
    """``cfg.rank_steps`` steps of the listwise matching loss on the training stream, the encoders frozen.

    The fusion layers run without dropout, and on the CPU attention takes PyTorch's math kernel: on the demo
    model's 3 fusion layers that makes the fusion step 1.4x faster than pair by pair with dropout
    (``python -m bench.itm_pairs --train``). The flash kernel's backward is the slow one at these lengths, 12 text
    against 73 video tokens. The learning rate warms up over the first 5% of the steps, then follows a cosine
    down to a tenth.

    Returns the check, measured on the last quarter of the steps, each batch before its update: ``loss`` against
    ``chance_loss`` (what a head that learned nothing scores) decides whether the exported head counts as trained;
    ``itc_r1`` / ``itm_r1`` (how often ITC, and the head re-ranking ITC's top k, put the positive first; over the
    directions trained and the ranks) are logged. They are not the decision: on training clips, which ITC has fitted
    for the whole run, ITC led by 4-6 points in every trial, whether or not the re-ranking was ahead on held-out
    clips (bench/README.md, eighth round)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from tqdm import tqdm

    params = ranking_parameters(raw_model)
    trained = {id(p) for p in params}
    frozen = [p for p in raw_model.parameters() if p.requires_grad and id(p) not in trained]
    for p in frozen:
        p.requires_grad_(False)
    ranker = Ranker(raw_model, cfg.rank_k, cfg.same_caption_positive, cfg.rank_v2t)
    model = ranker if not rt.ddp else nn.parallel.DistributedDataParallel(
        ranker, device_ids=[rt.local_rank] if rt.device.type == "cuda" else None)
    optimizer = torch.optim.AdamW(params, lr=cfg.rank_lr, weight_decay=0.0, fused=True)
    warmup = max(1, cfg.rank_steps // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) * (
        0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, max(0, s - warmup) / max(1, cfg.rank_steps - warmup))))))
    kernel = (lambda: sdpa_kernel(SDPBackend.MATH)) if rt.device.type == "cpu" else nullcontext
    check_from = cfg.rank_steps - max(1, cfg.rank_steps // 4)
    hits = torch.zeros(6, dtype=torch.float64)  # itc hits, itm hits, queries, loss sum, chance sum, steps
    raw_model.eval()  # frozen encoders; fusion layers without dropout
    bar = tqdm(total=cfg.rank_steps, desc="ranking stage", disable=not rt.master, dynamic_ncols=True, file=sys.stdout)
    start = t0 = time.time()
    losses = []
    try:
        for s in range(cfg.rank_steps):
            batch = next(stream)
            torch.manual_seed(_seed(cfg.seed, first_step + s, rt.rank, 1))
            with rt.ctx, kernel():
                out = model(batch["frames"].to(rt.device, non_blocking=True), batch["input_ids"].to(rt.device),
                            batch["attention_mask"].to(rt.device))
            rt.scaler.scale(out["loss"]).backward()
            loss_value = out["loss"].item()
            optimizer_step(cfg, first_step + s, loss_value, raw_model, optimizer, scheduler, rt.scaler, guard)
            losses.append(loss_value)
            if s >= check_from:
                hits += torch.tensor([out["itc_hit"].sum().item(), out["itm_hit"].sum().item(),
                                      out["itc_hit"].numel(), loss_value, out["chance"], 1],
                                     dtype=torch.float64)
            bar.update(1)
            if (s + 1) % cfg.log_every == 0 or s + 1 == cfg.rank_steps:
                loss = sum(losses) / len(losses)
                if rt.master:
                    elapsed = time.time() - t0
                    log.write({"step": first_step + s + 1, "stage": "rank", "loss_rank": loss,
                               "lr": optimizer.param_groups[0]["lr"], "skipped_steps": guard.nonfinite_total,
                               "samples_per_s": len(losses) * cfg.batch_size * rt.world_size / max(elapsed, 1e-9)})
                    bar.set_postfix(loss=f"{loss:.4f}")
                t0, losses = time.time(), []
    finally:
        bar.close()
        for p in frozen:
            p.requires_grad_(True)
    if rt.ddp:
        hits = hits.to(rt.device)  # NCCL reduces CUDA tensors only
        dist.all_reduce(hits)
    itc, itm, n, loss, chance, steps = hits.tolist()
    check = {"itc_r1": round(100 * itc / max(n, 1), 2), "itm_r1": round(100 * itm / max(n, 1), 2), "queries": int(n),
             "loss": round(loss / max(steps, 1), 4), "chance_loss": round(chance / max(steps, 1), 4),
             "steps": cfg.rank_steps, "k": cfg.rank_k, "wall_s": round(time.time() - start, 1)}
    if rt.master:
        log.write({"step": first_step + cfg.rank_steps, "stage": "rank", "rank_check": check})
        logger.info("ranking stage: on its last %d batches the loss was %.3f (a head that learned nothing: %.3f); ITC "
                    "put the positive first for %.1f%% of queries, the head re-ranking ITC's top %d for %.1f%% (these "
                    "are training clips, which ITC has fitted for the whole run)", cfg.rank_steps - check_from,
                    check["loss"], check["chance_loss"], check["itc_r1"], cfg.rank_k, check["itm_r1"])
    return check


def export_model(raw_model, folder: Path, cfg: TrainConfig, recent_vtm, precision: str,
                 rank_check: dict | None = None) -> None:
    """The trained model as a vtr folder (``vtr.create_model(folder)``), its matching head marked trained or not,
    and the precision it trained in (``precision``) as the one it runs in under ``--precision auto``."""
    from vtr.models.checkpoint import save_vtr
    from vtr.models.registry import config_to_dict

    # The matching head counts as trained when it came trained with the initial weights, or when this run's VTM
    # loss ended clearly below the entropy of its labels (1/3 positives: 0.637), which a head that learned
    # nothing sits at. After a ranking stage, its own loss decides the same way (``ranking_stage``'s check).
    # An untrained head re-ranks worse than the dual encoder, so the app hides re-ranking.
    vtm_final = sum(recent_vtm) / len(recent_vtm) if recent_vtm else None
    if rank_check is not None:
        raw_model.cfg.itm_trained = bool(rank_check["queries"]) and (
            rank_check["loss"] < RANK_LEARNED_FRACTION * rank_check["chance_loss"])
        if not raw_model.cfg.itm_trained:
            logger.warning("the ranking stage's loss ended at %.3f, not below %.0f%% of a head that learned nothing "
                           "(%.3f): the exported model offers no re-ranking; more rank_steps may help",
                           rank_check["loss"], 100 * RANK_LEARNED_FRACTION, rank_check["chance_loss"])
    else:
        raw_model.cfg.itm_trained = raw_model.cfg.itm_trained or (
            vtm_final is not None and vtm_final < ITM_LEARNED_FRACTION * VTM_CHANCE)
    if rank_check is None and cfg.loss_vtm and vtm_final is not None and not raw_model.cfg.itm_trained:
        logger.warning("the matching head did not learn (final VTM loss %.3f, chance %.3f): the exported model "
                       "offers no re-ranking", vtm_final, VTM_CHANCE)
    # A model trained in fp32 runs in fp32 unless told otherwise: the demo model's held-out R@1 moved by points in
    # bf16 (58.3 against 62.5 on one run), and at its size bf16 saves no time.
    raw_model.cfg.precision = "fp32" if precision == "fp32" else "auto"
    with space_said(Path(folder) / "model.safetensors", raw_model.state_dict(),
                    "free some space, then run again with --resume: it exports from the last checkpoint"):
        save_vtr(raw_model, folder, config_to_dict(raw_model.cfg, architecture=raw_model.architecture))
    logger.info("exported %s (load with vtr.create_model(%r))", folder, str(folder))


# ------------------------------------------------------------------------------------------------ the run
def check_ranges(cfg: TrainConfig) -> None:
    """Settings no run can use stop it before anything is built, naming the setting (``--max_steps -5`` spoke of
    text_start; ``--grad_clip -1`` flipped every gradient's sign, ascending the loss; ``--num_workers -1`` was a
    DataLoader traceback)."""
    between = lambda lo, hi, v: lo <= v <= hi  # noqa: E731
    rules = [("max_steps", cfg.max_steps >= 0, "0 (run epochs) or more"),
             ("epochs", cfg.epochs > 0, "positive"),
             ("batch_size", cfg.batch_size >= 1, "at least 1"),
             ("lr", cfg.lr > 0, "positive"),
             ("min_lr_ratio", between(0, 1, cfg.min_lr_ratio), "between 0 and 1"),
             ("warmup_steps", cfg.warmup_steps >= -1, "-1 (use warmup_epochs) or more"),
             ("warmup_epochs", cfg.warmup_epochs >= 0, "0 or more"),
             ("weight_decay", cfg.weight_decay >= 0, "0 or more"),
             ("grad_clip", cfg.grad_clip >= 0, "0 (off) or more"),
             ("num_workers", cfg.num_workers >= 0, "0 (load in the training process) or more"),
             ("mlm_prob", 0 < cfg.mlm_prob <= 1, "above 0 and at most 1"),
             ("mask_ratio", 0 <= cfg.mask_ratio < 1, "at least 0 and below 1"),
             ("vl_mask_ratio", cfg.vl_mask_ratio == -1 or 0 <= cfg.vl_mask_ratio < 1,
              "-1 (mask_ratio) or at least 0 and below 1"),
             ("crop_scale", 0 < cfg.crop_scale <= 1, "above 0 and at most 1"),
             ("flip_p", between(0, 1, cfg.flip_p), "between 0 and 1")]
    rules += [(k, getattr(cfg, k) >= 0, "0 (off) or more")
              for k in ("loss_vtc", "loss_vtm", "loss_mlm", "loss_distill", "loss_uta")]
    for key, ok, what in rules:
        if not ok:
            raise SystemExit(f"{key} must be {what}, got {getattr(cfg, key)}")


def check_shards(cfg: TrainConfig) -> None:
    """Shard settings that name nothing stop the run before the model is built (a glob matching no file was a
    ValueError from the loader, after the text weights had loaded)."""
    from vtr.data.shards import expand_shards

    for key in ("train_shards", "image_shards"):
        spec = getattr(cfg, key)
        if not spec:
            continue
        urls = expand_shards(spec)
        local = [u for u in urls if "://" not in u and not u.startswith("pipe:")]
        missing = [u for u in local if not os.path.isfile(u)]
        if not urls or missing:
            found = f"{len(missing)} of its {len(urls)} shards do not exist ({missing[0]})" if missing else \
                "it matches no shard"
            raise SystemExit(f"{key} {spec!r}: {found}. Give a folder of .tar shards, a glob, a brace pattern "
                             "(dir/{00000..00009}.tar) or URLs; `vtr shards make` writes shards")


def train(cfg: TrainConfig, resume: bool = False) -> dict:
    """One pretraining run (every rank under torchrun); returns the last step and its rank-averaged losses."""
    from tqdm import tqdm

    from vtr.models.registry import get_tokenizer

    if cfg.log_every < 1:
        raise SystemExit(f"log_every must be at least 1 (steps between logged losses), got {cfg.log_every}")
    check_ranges(cfg)
    check_shards(cfg)
    if cfg.text_start and not (cfg.teacher and (cfg.loss_uta > 0 or cfg.loss_distill > 0)):
        raise SystemExit(f"text_start {cfg.text_start}: the steps before it train the video encoder on its teacher "
                         "losses alone; set teacher and loss_uta (UMT's token alignment) or loss_distill")
    rt = setup_runtime(cfg)
    out_dir, ckpt_path = Path(cfg.out_dir), Path(cfg.out_dir) / "checkpoint.pt"
    # ---------------------------------------------------------------- model, teacher, optimizer
    teacher = build_teacher(cfg, rt.device) if cfg.teacher else None
    raw_model = build_model(cfg, teacher).to(rt.device)
    tokenizer = get_tokenizer(raw_model)
    fit_text_length(cfg, raw_model, tokenizer, log=rt.master)
    pretrainer = Pretrainer(raw_model, tokenizer, cfg, rt.rank, rt.world_size)
    model = wrap_ddp(pretrainer, cfg, rt)
    # fused: one kernel over all tensors, on the CPU too (tensor by tensor it was a tenth of the demo model's step)
    optimizer = torch.optim.AdamW(param_groups(raw_model, cfg.weight_decay), lr=cfg.lr,
                                  betas=(cfg.beta1, cfg.beta2), fused=True)
    # ---------------------------------------------------------------- schedule, resume, data
    sched = plan_schedule(cfg, rt.world_size)
    if cfg.text_start >= sched.total_steps:
        raise SystemExit(f"text_start {cfg.text_start} is not before the run's end (step {sched.total_steps}): the "
                         "text side would never train")
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: get_lr(s, cfg, sched.warmup_steps, sched.total_steps) / cfg.lr)
    guard = make_guard(cfg, sched.global_batch)
    step, loader_states = resume_from(ckpt_path, rt, raw_model, optimizer, scheduler, guard) if resume else (0, {})
    loaders = make_loaders(cfg, sched, tokenizer, raw_model.preprocess, rt.rank, loader_states)
    streams = {m: endless(loader) for m, loader in loaders.items()}
    # ---------------------------------------------------------------- logging
    log = RunLog(cfg, rt.master)
    guard.on_diverge = lambda message: log.write({"step": step, "diverged": message})
    if rt.master:
        logger.info("%d ranks, %d steps (%s per epoch), global batch %d, %s on %s", rt.world_size, sched.total_steps,
                    sched.steps_per_epoch, sched.global_batch, rt.precision, rt.device)
    bar = tqdm(total=sched.total_steps, initial=step, disable=not rt.master, dynamic_ncols=True, file=sys.stdout)
    stop_at = min(sched.total_steps, cfg.stop_after) if cfg.stop_after else sched.total_steps
    t0, last, masked_steps, logged_at = time.time(), {}, 0, step
    recent_vtm: deque[float] = deque(maxlen=max(cfg.log_every, 20))  # has the matching head learned anything?

    # ---------------------------------------------------------------- the loop
    stops, saved = StopRequests(rt.master).install(), step
    try:
        while step < stop_at:
            modality = sched.modality_of(step)
            inputs = step_inputs(cfg, next(streams[modality]), step, rt, raw_model, teacher)
            masked_steps += inputs["keep"] is not None
            raw_model.clamp_temperature()
            with rt.ctx:
                out = model(**inputs)
            rt.scaler.scale(out["loss"]).backward()
            grad_norm = optimizer_step(cfg, step, out["loss"].item(), raw_model, optimizer, scheduler, rt.scaler, guard)
            step += 1
            bar.update(1)
            if "vtc" in out:  # from text_start on
                spread = batch_spread(pretrainer) if step % cfg.log_every == 0 else None
                guard.observe_vtc(step, out["vtc"].item(), spread=spread)
            if "vtm" in out:
                recent_vtm.append(out["vtm"].item())

            if step % cfg.log_every == 0 or step == stop_at:
                last, corrupt = mean_over_ranks(out, loaders, rt)
                if rt.master:
                    elapsed = time.time() - t0
                    log.write({"step": step, "epoch": step / sched.epoch_steps, "modality": modality,
                               "lr": optimizer.param_groups[0]["lr"], **last, "temp": raw_model.temp.item(),
                               "grad_norm": grad_norm, "skipped_steps": guard.nonfinite_total, **guard.last_spread,
                               "corrupt_samples": corrupt,
                               **cache_record(loaders),
                               # of the steps since the last row, the part whose clips were masked (the student)
                               "masked_fraction": round(masked_steps / (step - logged_at), 4),
                               "samples_per_s": (step - logged_at) * sched.global_batch / max(elapsed, 1e-9)},
                              scalars=True)
                    bar.set_postfix(loss=f"{last['loss']:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
                t0, masked_steps, logged_at = time.time(), 0, step

            if cfg.eval_every and step % cfg.eval_every == 0 and rt.master:
                rows = maybe_evaluate(raw_model, tokenizer, cfg, step, rt.device, rt.precision)
                if rows:
                    log.write({"step": step, "eval": rows})

            if (cfg.ckpt_every > 0 and step % cfg.ckpt_every == 0) or step == stop_at:
                write_checkpoint(ckpt_path, rt, cfg, step, raw_model, optimizer, scheduler, guard, loaders)
                saved = step
            if stops.agreed(rt):
                if saved != step:
                    write_checkpoint(ckpt_path, rt, cfg, step, raw_model, optimizer, scheduler, guard, loaders)
                raise RunStopped(f"stopped at step {step} of {sched.total_steps} on {stops.name}, with a checkpoint in "
                                 f"{ckpt_path}")
        stops.release()  # the ranking stage and the export stop at once, as before
        # ------------------------------------------------------------ export
        if step >= sched.total_steps:
            guard.check_learned(step)  # on every rank: all stop together
            # The ranking stage is not checkpointed: a resumed finished run runs it again from the last checkpoint.
            stream = streams.get("video") or next(iter(streams.values()))
            check = ranking_stage(cfg, rt, raw_model, stream, log, guard, step) if cfg.rank_steps else None
            if rt.master:
                export_model(raw_model, out_dir / "model", cfg, recent_vtm, rt.precision, check)
    except RunStopped:
        if rt.ddp:
            dist.destroy_process_group()
        raise
    finally:  # a run that stops with an error (a diverged run, a broken shard folder) still closes its log
        stops.release()
        bar.close()
        log.close()
        for loader in loaders.values():  # and stops its decoding workers, which hold the decoded-clip cache
            loader.close()
    if rt.ddp:
        dist.barrier()
        dist.destroy_process_group()
    return {"step": step, **last}


USAGE = """usage: python -m pretrain.train --config FILE [--key value ...] [--resume]
       vtr train --config FILE [--key value ...] [--resume]          (the same flags)
       torchrun --nproc-per-node N -m pretrain.train --config FILE [--key value ...]

UMT-style video-text pretraining on WebDataset shards (VTC + VTM + MLM, optional token masking with
teacher alignment). Values come from the defaults below, then the YAML file, then the flags; unknown keys
are rejected. A boolean key takes --key, --key true|false or --no-key.

  --config FILE                      YAML file (pretrain/configs/*.yaml)
  --resume                           continue from out_dir/checkpoint.pt (same data order and losses)
  -h, --help                         this help
"""


def main(argv: list[str] | None = None) -> int:
    """``python -m pretrain.train`` and ``vtr train``: one command line (see ``USAGE``)."""
    from pretrain.config import config_help

    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE + config_help())
        return 0
    config, resume, rest, i = None, False, [], 0
    while i < len(argv):
        if argv[i] == "--config":
            if i + 1 >= len(argv):
                raise SystemExit("error: --config needs a file")
            config, i = argv[i + 1], i + 2
        elif argv[i].startswith("--config="):
            config, i = argv[i].split("=", 1)[1], i + 1
        elif argv[i] == "--resume":
            resume, i = True, i + 1
        else:
            rest.append(argv[i])
            i += 1
    if not logging.getLogger().handlers:  # python -m pretrain.train (vtr train has set logging up already)
        from vtr.cli import setup_logging

        setup_logging()
        if int(os.environ.get("RANK", 0)) != 0:  # one rank speaks
            logging.getLogger("pretrain").setLevel(logging.WARNING)
    try:
        cfg = load_config(config, rest)
    except (ValueError, OSError) as e:
        raise SystemExit(f"error: {e}") from None
    try:
        train(cfg, resume=resume)
    except VtrError as e:  # a diverging run, a full disk: said in one line, not a traceback
        raise SystemExit(f"error: {e}") from None
    except RunStopped as e:  # Ctrl+C or SIGTERM, after a checkpoint
        if int(os.environ.get("RANK", 0)) == 0:
            print(f"{e}: the same command with --resume goes on from there", file=sys.stderr)
        return 130
    except KeyboardInterrupt:  # a second Ctrl+C, or one outside the steps
        print("interrupted", file=sys.stderr)
        return 130
    return 0


#: ``vtr train`` hands its arguments to :func:`main` unparsed, so both command lines are one.
main.cli_passthrough = True


if __name__ == "__main__":
    sys.exit(main())
