"""Texts and videos into the evaluation cache: ITC embeddings and the states ITM reads, a batch at a time, each
batch committed as soon as it is encoded (what a resumed run skips)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from vtr.data.video import start_loader
from vtr.errors import VideoReadError
from vtr.eval.cache import ChunkedArrays


def bf16_autocast(device: torch.device, bf16: bool):
    """bf16 autocast on ``device`` when ``bf16``, else no context."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach()
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.float()
    return t.cpu().numpy()


def _progress(iterable=None, **kwargs):
    from tqdm.auto import tqdm

    return tqdm(iterable, dynamic_ncols=True, **kwargs)


@torch.no_grad()
def encode_texts(model, texts: Sequence[str], tokenize: Callable[[list[str]], dict], store: ChunkedArrays,
                 batch_size: int = 64, device: torch.device = torch.device("cpu"), bf16: bool = False,
                 max_length: int | None = None) -> int:
    """Encode the texts not yet in ``store``: arrays ``embedding`` [Nt, E], ``hidden`` [Nt, L, H], ``mask`` [Nt, L].

    tokenize(list of str) -> dict(input_ids [n, L], attention_mask [n, L]); shorter batches are padded (mask 0)
    to ``max_length`` so every chunk has the same L. Returns the number of texts encoded now.
    """
    missing = store.missing()
    for start in _progress(range(0, len(missing), batch_size), desc="texts", unit="batch",
                           total=(len(missing) + batch_size - 1) // batch_size, disable=len(missing) == 0):
        rows = missing[start:start + batch_size]
        tok = tokenize([texts[i] for i in rows])
        ids, mask = tok["input_ids"].to(device), tok["attention_mask"].to(device)
        with bf16_autocast(device, bf16):
            out = model.encode_text(ids, mask)
        hidden, mask = out.hidden, out.attention_mask
        if max_length is not None and hidden.shape[1] < max_length:
            pad = max_length - hidden.shape[1]
            hidden = torch.nn.functional.pad(hidden, (0, 0, 0, pad))
            mask = torch.nn.functional.pad(mask, (0, pad))
        store.write(rows, {"embedding": _to_numpy(out.embedding), "hidden": _to_numpy(hidden),
                           "mask": _to_numpy(mask).astype(np.int64)})
    return len(missing)


@dataclass
class _ReadFailure:
    source: str
    cause: str


class _CatchReadErrors(torch.utils.data.Dataset):
    """Turns a VideoReadError raised in a DataLoader worker into a value: the worker would otherwise re-raise it
    in the main process as a plain RuntimeError (it cannot rebuild an exception with two arguments)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        try:
            return self.dataset[i]
        except VideoReadError as e:
            return _ReadFailure(e.source, e.cause)


def _collate_or_error(items):
    for item in items:
        if isinstance(item, _ReadFailure):
            return item
    return torch.utils.data.default_collate(items)


@torch.no_grad()
def encode_videos(model, videos: torch.utils.data.Dataset, store: ChunkedArrays, with_tokens: bool = True,
                  batch_size: int = 8, workers: int = 0, device: torch.device = torch.device("cpu"),
                  bf16: bool = False) -> int:
    """Encode the videos not yet in ``store``: ``frame_embeds`` [Nv, T, E] (+ ``tokens`` [Nv, T·P, D]).

    videos[i] -> (i, frames [T, 3, H, W]), decoded in ``workers`` DataLoader processes. Each batch is committed
    to the cache as soon as it is encoded. Returns the number of videos encoded now.
    """
    missing = store.missing()
    if len(missing) == 0:
        return 0
    loader = torch.utils.data.DataLoader(
        _CatchReadErrors(torch.utils.data.Subset(videos, missing.tolist())), batch_size=batch_size, shuffle=False,
        num_workers=workers, pin_memory=device.type == "cuda", collate_fn=_collate_or_error,
    )
    for batch in _progress(start_loader(loader), total=len(loader), desc="videos", unit="batch"):
        if isinstance(batch, _ReadFailure):
            raise VideoReadError(batch.source, batch.cause)
        index, frames = batch
        frames = frames.to(device, non_blocking=True)
        with bf16_autocast(device, bf16):
            out = model.encode_video(frames, return_tokens=with_tokens)
        arrays = {"frame_embeds": _to_numpy(out.frame_embeds)}
        if with_tokens:
            arrays["tokens"] = _to_numpy(out.tokens)
        store.write(np.asarray(index, dtype=np.int64), arrays)
    return len(missing)
