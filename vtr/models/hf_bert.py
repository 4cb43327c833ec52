"""Hugging Face BERT for :mod:`vtr.models.bert`: its ``config.json``, its weights mapped by name onto
``BertFusionModel`` (and ``BertMLMHead``), and its tokenizer, from a hub name (cache first), a folder or a file.

Hub lookups go through :func:`vtr.models.hub.hub_file`: one offline rule and one message for every file.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import torch

from vtr.errors import CheckpointError, WeightsNotFoundError
from vtr.models.bert import BertFusionModel, BertMLMHead
from vtr.models.checkpoint import load_pickled_checkpoint

logger = logging.getLogger(__name__)


def _looks_like_path(name: str) -> bool:
    return (
        os.path.isabs(name)
        or name.startswith((".", "~"))
        or name.count("/") > 1
        or os.sep != "/" and os.sep in name
        or name.endswith((".safetensors", ".bin", ".pt", ".pth", ".txt", ".json"))
    )


def _resolve_hub_file(repo_id: str, filenames: list[str], what: str) -> str:
    """Local path of the first of ``filenames`` of hub repo ``repo_id`` (see :func:`vtr.models.hub.hub_file`)."""
    from vtr.models.hub import hub_file

    return hub_file(repo_id, filenames, what, otherwise=(
        f"download the model folder (config.json, vocab.txt, model.safetensors) from https://huggingface.co/{repo_id} "
        f"anywhere and pass that folder's path instead of {repo_id!r}"))


def read_hf_config(name_or_path) -> dict:
    """A Hugging Face ``config.json`` as a dict, from the file, its model folder, or a hub name (cache first,
    downloaded unless HF_HUB_OFFLINE)."""
    path = os.path.expanduser(str(name_or_path))
    if os.path.isdir(path):
        path = os.path.join(path, "config.json")
    elif not os.path.isfile(path):
        path = _resolve_hub_file(str(name_or_path), ["config.json"], what="BERT config")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _resolve_weights_file(name_or_path: str) -> str:
    path = os.path.expanduser(str(name_or_path))
    if os.path.isdir(path):
        for filename in ("model.safetensors", "pytorch_model.bin"):
            candidate = os.path.join(path, filename)
            if os.path.isfile(candidate):
                return candidate
        raise WeightsNotFoundError(
            f"BERT weights: folder {path} has neither model.safetensors nor pytorch_model.bin; "
            "put the Hugging Face model files there or pass a hub name such as 'bert-base-uncased'"
        )
    if os.path.isfile(path):
        return path
    if _looks_like_path(str(name_or_path)):
        raise WeightsNotFoundError(
            f"BERT weights: {path} does not exist; pass a folder holding model.safetensors or pytorch_model.bin, "
            "or a hub name such as 'bert-base-uncased'"
        )
    return _resolve_hub_file(str(name_or_path), ["model.safetensors", "pytorch_model.bin"], what="BERT weights")


def _read_state_dict(path: str) -> dict[str, torch.Tensor]:
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path, device="cpu")
    state = load_pickled_checkpoint(path)
    for key in ("state_dict", "model"):
        if isinstance(state.get(key), dict):
            state = state[key]
    return state


_IGNORED_PREFIXES = ("pooler.", "cls.seq_relationship.")
_IGNORED_NAMES = ("embeddings.position_ids", "embeddings.token_type_ids")


def _hf_name(name: str) -> str:
    """Canonical BERT name: no ``bert.`` prefix; old TF-converted ``LayerNorm.gamma/beta`` -> ``weight/bias``."""
    if name.startswith("bert."):
        name = name[len("bert.") :]
    if name.endswith("LayerNorm.gamma"):
        name = name[: -len("gamma")] + "weight"
    elif name.endswith("LayerNorm.beta"):
        name = name[: -len("beta")] + "bias"
    return name


def load_hf_bert(
    model: BertFusionModel,
    name_or_path: str = "bert-base-uncased",
    strict_text: bool = True,
    mlm_head: BertMLMHead | None = None,
) -> dict[str, Any]:
    """Copy Hugging Face BERT weights into ``model`` (and ``mlm_head``), leaving cross-attention as initialised.

    name_or_path: a hub name (``bert-base-uncased``; read from the hub cache, downloaded unless HF_HUB_OFFLINE),
        a model folder with ``model.safetensors`` or ``pytorch_model.bin``, or one such file.
        Names may carry the ``bert.`` prefix (BertForMaskedLM / BertForPreTraining) or not (BertModel).
    strict_text: raise CheckpointError when a non-cross-attention parameter of ``model`` is absent.
    mlm_head: also fill a BertMLMHead from ``cls.predictions.*`` (kept as initialised where absent; a missing
        decoder weight is taken from the word embeddings, BERT's tying).

    Returns ``{"source", "loaded", "initialized", "ignored"}``: our names copied (MLM head ones prefixed ``cls.``),
    our names left as initialised, and checkpoint names not used (pooler, NSP head, ``position_ids``, extra layers).
    Shape mismatches always raise CheckpointError.
    """
    source = _resolve_weights_file(name_or_path)
    checkpoint_state = _read_state_dict(source)

    targets: dict[str, torch.Tensor] = dict(model.state_dict(keep_vars=True))
    if mlm_head is not None:
        targets.update({f"cls.{k}": v for k, v in mlm_head.state_dict(keep_vars=True).items()})

    plan, ignored, mismatched = [], [], []
    for raw_name, tensor in checkpoint_state.items():
        name = _hf_name(raw_name)
        target = targets.get(name)
        if target is None or name.startswith(_IGNORED_PREFIXES) or name in _IGNORED_NAMES:
            ignored.append(raw_name)
        elif target.shape != tensor.shape:
            mismatched.append(f"{raw_name}: checkpoint {tuple(tensor.shape)} vs model {tuple(target.shape)}")
        else:
            plan.append((name, tensor))
    if mismatched:  # checked before copying anything, so a failed load leaves the model untouched
        raise CheckpointError(
            f"{source} does not fit this text encoder (wrong TextConfig?): " + "; ".join(mismatched[:10])
            + (f" (+{len(mismatched) - 10} more)" if len(mismatched) > 10 else "")
        )

    # A parameter shared under several names (tied decoder weight; decoder.bias is bias) is loaded through any.
    planned_ids = {id(targets[name]) for name, _ in plan}
    loaded = [name for name, target in targets.items() if id(target) in planned_ids]
    decoder, word = "cls.predictions.decoder.weight", "embeddings.word_embeddings.weight"
    untied_decoder = mlm_head is not None and decoder not in loaded and word in loaded
    if untied_decoder:
        loaded.append(decoder)  # BERT ties it to the word embeddings: copy them
    loaded_set = set(loaded)
    initialized = [n for n in targets if n not in loaded_set]
    missing_text = [n for n in initialized if not n.startswith("cls.") and ".crossattention." not in n]
    if strict_text and missing_text:
        raise CheckpointError(
            f"{source} lacks {len(missing_text)} text-encoder weights, e.g. {missing_text[:5]}; "
            "pass strict_text=False to keep them initialised"
        )

    with torch.no_grad():
        for name, tensor in plan:
            targets[name].copy_(tensor)
        if untied_decoder:
            targets[decoder].copy_(targets[word])
    logger.info(
        "loaded %d BERT tensors from %s; %d left initialised; %d ignored",
        len(loaded), source, len(initialized), len(ignored),
    )
    return {"source": source, "loaded": loaded, "initialized": initialized, "ignored": ignored}


def load_tokenizer(name_or_path: str = "bert-base-uncased"):
    """BERT's WordPiece tokenizer (:class:`vtr.data.tokenizer.BertTokenizer`: transformers' ids, without importing
    transformers) from a hub name (cache first, download unless HF_HUB_OFFLINE), a tokenizer/model folder, or a
    ``vocab.txt`` or ``tokenizer.json`` file. Raises WeightsNotFoundError when offline and not cached, naming what
    to download."""
    from vtr.data.tokenizer import BertTokenizer

    path = os.path.expanduser(str(name_or_path))
    if os.path.isfile(path):
        return BertTokenizer.from_file(path)
    if os.path.isdir(path):
        return BertTokenizer.from_folder(path)
    if _looks_like_path(str(name_or_path)):
        raise WeightsNotFoundError(f"tokenizer: {path} does not exist; pass a folder holding vocab.txt or the file")
    # vocab.txt alone defines the uncased WordPiece tokenizer; the snapshot folder also holds whatever
    # tokenizer files were cached with it (e.g. by `hf download`).
    vocab = _resolve_hub_file(str(name_or_path), ["vocab.txt"], what="BERT tokenizer")
    return BertTokenizer.from_folder(os.path.dirname(vocab))


__all__ = ["load_hf_bert", "load_tokenizer", "read_hf_config"]
