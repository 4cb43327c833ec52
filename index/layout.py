"""The index folder: the files every stage reads and writes, and the manifest that says how the vectors were made.

    IDX/manifest.json      model, weights checksum, frames per window, window/stride seconds, resolution,
                           antialias, mean/std, window policy, embedding size, precision, vtr version, FAISS factory
    IDX/catalog.sqlite     files, windows (with their float32 vectors), chunks, meta    (see index.catalog)
    IDX/vectors.faiss      IDMap2 FAISS index, CPU format, ids = window ids             (see index.store)
    IDX/thumbnails/K/ID.jpg  the middle sampled frame of window ID (K = ID // 1000)
    IDX/weights_verified.json  optional cache: the model files that last passed the weights check, as stat saw them

Building (:mod:`index.build`), the distributed merge (:mod:`index.distributed`), searching (:mod:`index.search`)
and the app all go through this module for names and the manifest; every file is replaced atomically
(:mod:`vtr.atomic`), so a reader never sees half a file.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from vtr.atomic import write_bytes_atomic, write_json_atomic, write_text_atomic

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
CATALOG = "catalog.sqlite"
VECTORS = "vectors.faiss"
THUMBNAILS = "thumbnails"
#: optional: one query per line that fits this collection, offered by the app before the everyday ones
QUERIES = "queries.txt"
#: the files whose tensors last passed the weights check of a search, as ``stat`` saw them (see
#: :func:`weights_verified`); a cache, rewritten or ignored, never required
WEIGHTS_VERIFIED = "weights_verified.json"
#: manifest keys that must match for new vectors to be comparable with the stored ones
SETTINGS_KEYS = ("model", "weights_checksum", "num_frames", "img_size", "antialias", "mean", "std", "window_s",
                 "stride_s", "window_policy", "embed_dim")
#: What manifests written before ``antialias`` was recorded mean: those builds always resized with antialiasing.
LEGACY_ANTIALIAS = True


def is_index(index_dir) -> bool:
    """Whether ``index_dir`` holds an index (its manifest and catalog)."""
    return os.path.isfile(Path(index_dir) / MANIFEST) and os.path.isfile(Path(index_dir) / CATALOG)  # never raises


# -------------------------------------------------------------------------------------------------- manifest
def weights_checksum(model) -> str:
    """What the manifest pins: the sha256 of the model's tensors (see ``state_dict_checksum``)."""
    from vtr.models.checkpoint import state_dict_checksum

    return state_dict_checksum(model)


def weights_identity(model) -> dict | None:
    """What the weights check can be remembered by: the files every tensor of ``model`` was read from, as ``stat``
    saw them before the read (``model.weights_files``, :func:`vtr.models.registry.create_model`), and vtr's version.
    The same identity means the same bytes. None for a model not read wholly from files (random init, overrides)."""
    from vtr import __version__

    files = getattr(model, "weights_files", None)
    return {"vtr_version": __version__, "files": list(files)} if files else None


def weights_verified(index_dir, identity: dict | None, checksum: str) -> bool:
    """Whether files of this ``identity`` already passed the weights check against ``checksum`` (the manifest's):
    then a search need not hash the model's tensors again (``bench.cli_latency``: 2.31 s → 1.71 s for a ``vtr
    search`` with the release-size model, ``bench/README.md``)."""
    path = Path(index_dir) / WEIGHTS_VERIFIED
    if identity is None or not path.is_file():
        return False
    try:
        return json.loads(path.read_text()) == {**identity, "weights_checksum": checksum}
    except (OSError, ValueError):
        return False


def remember_weights_verified(index_dir, identity: dict | None, checksum: str) -> None:
    """Record that files of this ``identity`` passed the weights check; an index folder that cannot be written
    (a read-only share) is left as it is, and its searches go on hashing."""
    if identity is None:
        return
    try:
        write_json_atomic(Path(index_dir) / WEIGHTS_VERIFIED, {**identity, "weights_checksum": checksum})
    except OSError as e:
        logger.debug("cannot record the weights check in %s: %s", index_dir, e)


def manifest_for(model, window_s: float, stride_s: float, precision: str = "fp32",
                 window_policy: str = "stride") -> dict:
    """The manifest of an index whose windows ``model`` embeds with these settings."""
    from vtr import __version__

    pre = model.preprocess
    return {
        "format": "vtr-index",
        "model": str(getattr(model, "index_source", getattr(model, "model_name", ""))),
        "weights_checksum": weights_checksum(model),
        "num_frames": int(pre.num_frames),
        "img_size": int(pre.img_size),
        "antialias": bool(pre.antialias),
        "mean": [float(x) for x in pre.mean],
        "std": [float(x) for x in pre.std],
        "max_txt_l": int(pre.max_txt_l),
        "window_s": float(window_s),
        "stride_s": float(stride_s),
        "window_policy": window_policy,
        "embed_dim": int(model.cfg.embed_dim),
        # recorded, not checked: bf16 and fp32 vectors of one model agree to cosine 0.999, so an index built in one
        # is searched and updated in the other (see vtr.precision)
        "precision": precision,
        "vtr_version": __version__,
    }


def read_manifest(index_dir) -> dict | None:
    """The manifest, with ``antialias`` filled in for indexes built before it was recorded (see LEGACY_ANTIALIAS)."""
    path = Path(index_dir) / MANIFEST
    if not os.path.isfile(path):  # Path.is_file raised on a name too long for the file system
        return None
    manifest = json.loads(path.read_text())
    manifest.setdefault("antialias", LEGACY_ANTIALIAS)
    return manifest


def write_manifest(index_dir, manifest: dict) -> None:
    write_json_atomic(Path(index_dir) / MANIFEST, manifest)


def check_manifest(old: dict, new: dict) -> list[str]:
    """The settings (:data:`SETTINGS_KEYS`) in which ``new`` differs from the index's ``old`` manifest."""
    old = {"window_policy": "stride", **old}  # indexes built before window policies existed
    if os.path.abspath(str(old.get("model"))) == new.get("model"):  # a folder recorded relative to the directory
        old["model"] = new["model"]  # of its build (before 2026-12-04) is the same folder named from here
    return [f"{k}: index has {old.get(k)!r}, now {new.get(k)!r}" for k in SETTINGS_KEYS if old.get(k) != new.get(k)]


def index_preprocess(model, manifest: dict):
    """The preprocessing the index's vectors were made with: the model's, resized as the manifest records (an old
    index of weights that do not antialias was built with antialiasing: queries by example follow the index)."""
    import dataclasses

    pre = model.preprocess
    if bool(manifest.get("antialias", LEGACY_ANTIALIAS)) != bool(pre.antialias):
        logger.warning("this index was built resizing frames with antialias=%s, but the model was trained with "
                       "antialias=%s: searches work, but re-embedding (`vtr index update --reembed`) feeds the "
                       "model as it was trained", manifest.get("antialias"), pre.antialias)
        pre = dataclasses.replace(pre, antialias=bool(manifest["antialias"]))
    return pre


# ----------------------------------------------------------------------------------------- suggested queries
def read_queries(index_dir) -> list[str]:
    """The collection's own candidate queries (:data:`QUERIES`): stripped, non-empty, first occurrence; [] if none."""
    path = Path(index_dir) / QUERIES
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return list(dict.fromkeys(line for line in lines if line))


def write_queries(index_dir, queries) -> None:
    write_text_atomic(Path(index_dir) / QUERIES, "".join(q.strip() + "\n" for q in queries if q.strip()))


# ------------------------------------------------------------------------------------------------ thumbnails
def thumbnails_dir(index_dir) -> Path:
    return Path(index_dir) / THUMBNAILS


def thumbnail_path(index_dir, window_id: int) -> Path:
    return thumbnails_dir(index_dir) / str(int(window_id) // 1000) / f"{int(window_id)}.jpg"


def write_thumbnail(index_dir, window_id: int, jpeg: bytes) -> None:
    write_bytes_atomic(thumbnail_path(index_dir, window_id), jpeg)


def remove_thumbnails(index_dir, window_ids) -> None:
    for i in window_ids:
        try:
            thumbnail_path(index_dir, i).unlink()
        except FileNotFoundError:
            pass


__all__ = ["MANIFEST", "CATALOG", "VECTORS", "THUMBNAILS", "QUERIES", "read_queries", "write_queries", "SETTINGS_KEYS",
           "LEGACY_ANTIALIAS", "is_index",
           "weights_checksum", "weights_identity", "weights_verified", "remember_weights_verified", "WEIGHTS_VERIFIED",
           "manifest_for", "read_manifest", "write_manifest", "check_manifest",
           "index_preprocess", "thumbnails_dir", "thumbnail_path", "write_thumbnail", "remove_thumbnails"]
