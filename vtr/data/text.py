"""Caption normalisation and tokenisation, as the release does it for training and evaluation (model.md §4)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

_DELETED = re.compile(r"[,.'!?\"()*#:;~]")
_WHITESPACE_RUN = re.compile(r"\s{2,}")


def normalize_caption(text: str, max_words: int | None = None) -> str:
    """Normalise a caption exactly as UMT/VINDLU's ``pre_text`` (the release's text preprocessing).

    In this order: lowercase and delete ``, . ' ! ? " ( ) * # : ; ~``; ``-`` and ``/`` become spaces;
    ``<person>`` becomes ``person`` (the angle brackets are not deleted first, so the tag survives the first step);
    every run of two or more whitespace characters becomes one space; trailing newlines and surrounding spaces are
    stripped. Like upstream, a single tab/newline inside the text is kept (the tokenizer treats it as a space).
    ``max_words`` (upstream ``max_l``) keeps only the first words; None keeps all (the retrieval setting).

    >>> normalize_caption("A man -- in a <PERSON>'s hat/coat!")
    'a man in a persons hat coat'
    """
    text = _DELETED.sub("", text.lower())
    text = text.replace("-", " ").replace("/", " ").replace("<person>", "person")
    text = _WHITESPACE_RUN.sub(" ", text)
    text = text.rstrip("\n").strip(" ")
    if max_words:
        words = text.split(" ")
        if len(words) > max_words:
            text = " ".join(words[:max_words])
    return text


def join_paragraph(captions: Sequence[str] | str) -> str:
    """Paragraph retrieval (DiDeMo, ActivityNet): a video's sentences joined with one space, as UMT's
    ``preprocess_para_retrieval_data``; normalise the joined text afterwards, as upstream does."""
    if isinstance(captions, str):
        return captions
    return " ".join(captions)


def tokenize(tokenizer, texts: Sequence[str] | str, max_length: int) -> dict[str, torch.Tensor]:
    """Tokenise like the release: ``padding="max_length", truncation=True, max_length=max_length``.

    Returns ``{"input_ids": [N, max_length], "attention_mask": [N, max_length]}`` (LongTensors; no token types,
    the model uses type 0 everywhere). Texts should already be normalised (:func:`normalize_caption`).
    """
    if isinstance(texts, str):
        texts = [texts]
    batch = tokenizer(
        list(texts), padding="max_length", truncation=True, max_length=max_length, return_tensors="pt"
    )
    return {
        "input_ids": batch["input_ids"].long(),
        "attention_mask": batch["attention_mask"].long(),
    }


__all__ = ["normalize_caption", "join_paragraph", "tokenize"]
