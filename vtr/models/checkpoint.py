"""Checkpoint filter and strict loading.

Recognises the released VideoMamba layout (flat or wrapped; ``text_encoder.bert.``, ``clip_teacher.*``,
``text_encoder.cls.*``, bf16 tensors, the ``position_ids`` buffer), the official retrieval layout and vtr's own.
Every checkpoint key is either used (possibly renamed, cast or resized, by a named rule) or dropped by a named
rule; every model key must be filled. Anything else is an error that names the keys: a partial load looks like
a weak model, which is the worst kind of bug (model.md §1).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import pickle
import re
import threading
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from vtr.atomic import atomic_path, write_json_atomic
from vtr.errors import CheckpointError
from vtr.models.videomamba import resize_pos_embed, resize_temporal_pos_embed

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


@dataclass
class LoadReport:
    """What a load did with every key, grouped by the rule that decided it."""

    used: int = 0
    renamed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    cast: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    resized: list[str] = field(default_factory=list)
    dropped: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def summary(self) -> str:
        lines = [f"checkpoint load: {self.used} model tensors filled"]
        for rule, n in self.renamed.items():
            lines.append(f"  renamed  {n:5d}  {rule}")
        for rule, n in self.cast.items():
            lines.append(f"  cast     {n:5d}  {rule}")
        for what in self.resized:
            lines.append(f"  resized         {what}")
        for rule, keys in self.dropped.items():
            lines.append(f"  dropped  {len(keys):5d}  {rule}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "used": self.used,
            "renamed": dict(self.renamed),
            "cast": dict(self.cast),
            "resized": list(self.resized),
            "dropped": {rule: len(keys) for rule, keys in self.dropped.items()},
        }


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a ``.pth``/``.pt``/``.bin`` or ``.safetensors`` file (or a vtr folder) into a flat state dict."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    return unwrap_state_dict(load_pickled_checkpoint(path), source=str(path))


#: safetensors' dtype names (https://github.com/huggingface/safetensors, the format's header)
SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                      "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
                      "U8": torch.uint8, "BOOL": torch.bool}


def read_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file, each copied into memory of its own, with the file's pages given back
    as they are copied. ``safetensors.torch.load_file`` hands out views of the mapped file, 8-byte aligned, which
    the loader then copied to aligned memory (see :func:`filter_checkpoint`): the process held the weights twice
    (``python -m bench.cli_latency``: a search with the release-size model peaked at 1767 MiB, 1025 read this way).
    A dtype this reader does not know goes to safetensors."""
    import json
    import mmap

    path = Path(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        try:
            if not 0 < n <= size - 8:
                raise ValueError("no header")
            header = json.loads(f.read(n))
            entries = sorted(((k, v) for k, v in header.items() if k != "__metadata__"),
                             key=lambda kv: kv[1]["data_offsets"][0])
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise CheckpointError(f"{path}: not a safetensors file ({e})") from None
        if any(v.get("dtype") not in SAFETENSORS_DTYPES for _, v in entries):
            from safetensors.torch import load_file

            return load_file(str(path))
        out = {}
        if 8 + n == size:  # tensors without elements only: nothing to map
            return {name: torch.empty(info["shape"], dtype=SAFETENSORS_DTYPES[info["dtype"]]) for name, info in entries}
        # ACCESS_COPY: a writable view (torch.frombuffer warns on a read-only one) that is never written
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY) as mapped:
            given_back = 0  # pages before this offset are given back (MADV_DONTNEED: out of this process's memory)
            for name, info in entries:
                begin, end = (8 + n + o for o in info["data_offsets"])
                tensor = torch.empty(info["shape"], dtype=SAFETENSORS_DTYPES[info["dtype"]])
                raw = tensor.reshape(-1).view(torch.uint8)
                if raw.numel() != end - begin or end > size:
                    raise CheckpointError(f"{path}: {name} is cut short or its header is wrong (damaged file?)")
                if raw.numel():
                    source = torch.frombuffer(mapped, dtype=torch.uint8, count=end - begin, offset=begin)
                    raw.copy_(source)
                    del source  # the view must go before the mapping closes
                    done = end // mmap.PAGESIZE * mmap.PAGESIZE
                    if done > given_back and hasattr(mmap, "MADV_DONTNEED"):
                        mapped.madvise(mmap.MADV_DONTNEED, given_back, done - given_back)
                        given_back = done
                out[name] = tensor
    return out


class PickledObject(dict):
    """An object of a class vtr does not import, as :func:`load_pickled_checkpoint` reads it: inert data (the
    arguments it was made from in ``args``, its pickled state in ``state``, its items if it was a dict, as an
    ``EasyDict`` config is). Nothing of the class's own code runs."""

    global_name = "?"

    def __new__(cls, *args, **kwargs):
        return dict.__new__(cls)

    def __init__(self, *args, **kwargs):
        dict.__init__(self)
        self.__dict__["args"] = args

    def __setstate__(self, state):
        self.__dict__["state"] = state

    def __repr__(self) -> str:
        return f"<{self.global_name}, read as data: {dict.__repr__(self)}>"


def load_pickled_checkpoint(path: str | os.PathLike):
    """``torch.load(path, weights_only=True)``, so that no file can run code, that also reads the checkpoints the
    official training code writes: beside the weights they keep Python objects ``weights_only`` refuses (the
    config, an ``EasyDict``; an ``argparse.Namespace``). Those files are read again with the restriction the pickle
    documentation gives ("Restricting Globals"): what torch's ``weights_only`` allows is itself, every other class
    or function a named, inert :class:`PickledObject`; nothing else is imported or called. Unreadable files raise
    :class:`CheckpointError` in one sentence."""
    try:
        return _torch_load(path, weights_only=True)
    except pickle.UnpicklingError as e:  # objects beside the tensors, or not a checkpoint at all
        refused = e
    except Exception as e:  # noqa: BLE001 - not a zip or pickle torch can read: said with the file name
        raise CheckpointError(f"cannot read checkpoint {path}: {_load_failure(e)}") from e
    unpickler = _data_only_unpickler()
    try:
        obj = _torch_load(path, weights_only=False, pickle_module=unpickler)
    except Exception:  # noqa: BLE001 - what weights_only said is the clearer reason
        raise CheckpointError(f"cannot read checkpoint {path}: {_load_failure(refused)}") from refused
    logger.info("%s: read %s as data (Python objects beside the weights; none of their code ran)", path,
                ", ".join(sorted(unpickler.placeholders)) or "nothing")
    return obj


def _torch_load(path, **kwargs):
    """``torch.load`` to the CPU, mapping a zip checkpoint (torch's format since 1.6) instead of reading it: only
    the tensors the model uses are read. A release file's CLIP teacher (a third of it) is dropped unread, and its
    bf16 tensors are cast without a copy of the file in memory (``python -m bench.cli_latency``, "load the release
    file"). Older (non-zip) files are read as before."""
    import zipfile

    if zipfile.is_zipfile(path):
        try:
            return torch.load(path, map_location="cpu", mmap=True, **kwargs)
        except (OSError, RuntimeError) as e:  # a file system that cannot map it: read it (a damaged file fails again)
            logger.debug("cannot map %s (%s); reading it", path, e)
    return torch.load(path, map_location="cpu", **kwargs)


def _data_only_unpickler():
    """A ``pickle_module`` for ``torch.load`` whose unpickler finds torch's ``weights_only`` globals and nothing
    else: any other name becomes a :class:`PickledObject` subclass named after it (recorded in ``placeholders``)."""
    import types

    from torch._weights_only_unpickler import _get_allowed_globals

    allowed, placeholders = _get_allowed_globals(), {}

    class DataOnlyUnpickler(pickle.Unpickler):
        def find_class(self, module, name):
            full = f"{module}.{name}"
            if full in allowed:
                return allowed[full]
            if full not in placeholders:
                placeholders[full] = type(name.rsplit(".", 1)[-1], (PickledObject,),
                                          {"global_name": full, "__module__": __name__})
            return placeholders[full]

    return types.SimpleNamespace(__name__="vtr_data_only_pickle", __version__=pickle.format_version,
                                 Unpickler=DataOnlyUnpickler, load=lambda f, **kw: DataOnlyUnpickler(f, **kw).load(),
                                 placeholders=placeholders)


def _load_failure(e: BaseException) -> str:
    """What torch.load's error says about the file, without its advice on ``weights_only`` (which vtr keeps on)."""
    text = str(e)
    inner = re.search(r"WeightsUnpickler error:\s*(.*?)(?:\n\n|$)", text, re.S)
    detail = " ".join((inner.group(1) if inner else text).split())
    first_sentence = re.split(r"(?<=\.)\s", detail, maxsplit=1)[0]
    return f"not a PyTorch checkpoint, or a damaged one ({first_sentence[:300]})"


def unwrap_state_dict(obj, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Accept a flat state dict or one wrapped as ``{"model": sd}`` / ``{"module": sd}`` / ``{"state_dict": sd}``."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"{source}: expected a state dict, found {type(obj).__name__}")
    for wrapper in ("model", "module", "state_dict"):
        if wrapper in obj and isinstance(obj[wrapper], dict):
            obj = obj[wrapper]
            break
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{source}: no tensors found")
    return tensors


def file_checksum(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """sha256 of a file (of ``model.safetensors`` for a vtr folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def state_dict_checksum(model: nn.Module) -> str:
    """sha256 over a model's tensors (name, dtype, shape, bytes), whatever file they came from; cached on the
    model. Identifies weights that have no file (random init, trained in this process)."""
    cached = getattr(model, "_state_dict_checksum", None)
    if cached:
        return cached
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        # the tensor's own bytes, not a copy: hashlib reads the buffer without the GIL (VideoIndex hashes in a
        # thread beside the tokenizer's loading)
        digest.update(t.reshape(-1).view(torch.uint8).numpy() if t.numel() else b"")
    model._state_dict_checksum = digest.hexdigest()
    return model._state_dict_checksum


def filter_checkpoint(state_dict: dict[str, torch.Tensor], model: nn.Module) -> tuple[dict, LoadReport]:
    """Map a foreign state dict onto ``model``'s names, shapes and dtypes; returns (state dict, report).

    Raises CheckpointError naming every model key left missing, every checkpoint key no rule explains, and
    every shape that cannot be reconciled.
    """
    report = LoadReport()
    target = model.state_dict()
    has_mlm_head = any(k.startswith("text_mlm_head.") for k in target)
    out: dict[str, torch.Tensor] = {}
    unexplained: list[str] = []

    for key, value in state_dict.items():
        name = key
        if name.startswith("module."):
            name = name[len("module.") :]
            report.renamed["DDP prefix 'module.' stripped"] += 1
        if name.startswith("clip_teacher."):
            report.dropped["CLIP teacher (pretraining only)"].append(key)
            continue
        if name.endswith("embeddings.position_ids"):
            report.dropped["position_ids buffer (positions are computed)"].append(key)
            continue
        if name.startswith("text_encoder.cls."):
            if has_mlm_head:
                name = "text_mlm_head." + name[len("text_encoder.cls.") :]
                report.renamed["release MLM head text_encoder.cls. -> text_mlm_head."] += 1
            else:
                report.dropped["MLM head (pretraining only; model built without it)"].append(key)
                continue
        elif name.startswith("text_encoder.bert."):
            name = "text_encoder." + name[len("text_encoder.bert.") :]
            report.renamed["release text prefix text_encoder.bert. -> text_encoder."] += 1
        if name not in target:
            unexplained.append(key)
            continue
        want = target[name]
        if value.shape != want.shape:
            value = _resize(name, value, want, report)
        if value.dtype != want.dtype:
            report.cast[f"{value.dtype} -> {want.dtype}".replace("torch.", "")] += 1
            value = value.to(want.dtype)
        if not value.is_contiguous() or value.data_ptr() % 64:
            # safetensors hands out 8-byte-aligned views; oneDNN/MKL kernels take other code paths on them
            # and round differently, so the same weights would give different last digits per file format.
            value = value.clone(memory_format=torch.contiguous_format)
        out[name] = value

    tied = "text_mlm_head.predictions.decoder.weight"
    word = "text_encoder.embeddings.word_embeddings.weight"
    if tied in out and word in out and not torch.equal(out[tied], out[word]):
        raise CheckpointError(
            f"{tied} differs from {word}, but the model ties them (as BERT's MLM head does); "
            "this checkpoint was not trained with tied weights"
        )

    missing = [k for k in target if k not in out]
    if missing or unexplained:
        parts = []
        if missing:
            parts.append(f"{len(missing)} model key(s) missing from the checkpoint: {_preview(missing)}")
        if unexplained:
            parts.append(f"{len(unexplained)} checkpoint key(s) no rule explains: {_preview(unexplained)}")
        raise CheckpointError("; ".join(parts))
    report.used = len(out)
    return out, report


def _resize(name: str, value: torch.Tensor, want: torch.Tensor, report: LoadReport) -> torch.Tensor:
    if name.endswith("vision_encoder.pos_embed"):
        grid = int(round((want.shape[1] - 1) ** 0.5))
        resized = resize_pos_embed(value.float(), (grid, grid))
    elif name.endswith("vision_encoder.temporal_pos_embedding"):
        resized = resize_temporal_pos_embed(value.float(), want.shape[1])
    else:
        raise CheckpointError(f"shape mismatch for {name}: checkpoint {tuple(value.shape)}, model {tuple(want.shape)}")
    if resized.shape != want.shape:
        raise CheckpointError(f"cannot resize {name} from {tuple(value.shape)} to {tuple(want.shape)}")
    report.resized.append(f"{name} {tuple(value.shape)} -> {tuple(want.shape)}")
    return resized


def _preview(keys: list[str], n: int = 10) -> str:
    shown = ", ".join(keys[:n])
    return shown + (f", ... (+{len(keys) - n} more)" if len(keys) > n else "")


#: The ``torch.nn.init`` functions that module constructors call (``reset_parameters``) and vtr's own inits use.
_INIT_FUNCTIONS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
                   "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_",
                   "sparse_")
_meta_lock = threading.Lock()
_meta_depth = 0


@contextmanager
def empty_weights():
    """Build modules on the meta device, to be filled from a checkpoint (``load_checkpoint(..., assign=True)``):
    no memory, and no random init drawn. torch has no meta kernel for ``normal_``, ``uniform_`` or ``rand``: each
    falls back to a Python reference whose first call imports torch's compiler (0.8-0.9 s a process, the most of
    what ``vtr search`` spent building the model). Here the ``torch.nn.init`` functions return meta tensors as
    they are; other tensors, in other threads too, are initialised as ever."""
    global _meta_depth

    with _meta_lock:
        if _meta_depth == 0:
            for name in _INIT_FUNCTIONS:
                setattr(nn.init, name, _skip_on_meta(getattr(nn.init, name)))
        _meta_depth += 1
    try:
        with torch.device("meta"):
            yield
    finally:
        with _meta_lock:
            _meta_depth -= 1
            if _meta_depth == 0:
                for name in _INIT_FUNCTIONS:
                    setattr(nn.init, name, getattr(nn.init, name).__wrapped__)


def _skip_on_meta(fn):
    @functools.wraps(fn)
    def init(tensor, *args, **kwargs):
        return tensor if tensor.is_meta else fn(tensor, *args, **kwargs)

    return init


def load_checkpoint(model: nn.Module, source, log: bool = True, assign: bool = False) -> LoadReport:
    """Filter then strictly load ``source`` (a path or a state dict) into ``model``; returns the report.

    assign: take the checkpoint's tensors instead of copying into existing ones — for a model built on the
        ``meta`` device, which skips the (slow, wasted) random initialisation of ~190M parameters.
    """
    state_dict = read_state_dict(source) if isinstance(source, (str, os.PathLike)) else unwrap_state_dict(source)
    filtered, report = filter_checkpoint(state_dict, model)
    model.load_state_dict(filtered, strict=True, assign=assign)
    if hasattr(model, "tie_weights"):
        model.tie_weights()  # assign replaces each tied parameter separately; share them again
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise CheckpointError(f"tensors not filled by the checkpoint: {_preview(left)}")
    if log:
        logger.info("%s", report.summary())
    return report


def save_vtr(model: nn.Module, folder: str | os.PathLike, config: dict) -> Path:
    """Write vtr's own format: ``model.safetensors`` + ``config.json`` (architecture and preprocessing)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # Tied weights (MLM decoder = word embeddings) are stored once per name; safetensors refuses shared storage.
    tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "vtr"})
    write_json_atomic(folder / CONFIG_FILE, config)
    return folder
