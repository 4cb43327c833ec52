"""BERT's WordPiece tokenizer on the ``tokenizers`` library, without importing transformers.

``transformers.BertTokenizerFast`` runs this same Rust pipeline (BERT's normaliser and pre-tokenizer, WordPiece,
``[CLS] … [SEP]``) behind a Python layer whose import costs every process that reads a query 0.8 s and 45 MiB
(``python -m bench.cli_latency``). :class:`BertTokenizer` keeps the part of its interface vtr uses, and gives the
same ids: ``tests/data/test_tokenizer.py`` compares the two on the same files.

Padding and truncation are done here, on the ids, rather than by switching the Rust tokenizer's own settings: those
are shared state, and the app encodes queries from several threads.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from vtr.errors import VtrError, WeightsNotFoundError

#: BERT's special tokens; a vocabulary without all of them is not a BERT WordPiece vocabulary.
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
#: What transformers assumes when a tokenizer names no ``model_max_length``: BERT's positions end at 512.
DEFAULT_MAX_LENGTH = 512


class BertTokenizer:
    """Uncased (or cased) BERT WordPiece: ``tokenizer(texts, padding="max_length", truncation=True, max_length=L,
    return_tensors="pt")`` → ``{"input_ids", "token_type_ids", "attention_mask"}``, as transformers' tokenizers
    answer. Build it with :meth:`from_vocab` (a ``vocab.txt``) or :meth:`from_folder`."""

    def __init__(self, backend, model_max_length: int = DEFAULT_MAX_LENGTH, source: str = ""):
        """``backend``: a ``tokenizers.Tokenizer`` holding a BERT vocabulary (its own padding and truncation are
        switched off: this class does both)."""
        backend.no_padding()
        backend.no_truncation()
        ids = {token: backend.token_to_id(token) for token in SPECIAL_TOKENS}
        missing = [token for token, i in ids.items() if i is None]
        if missing:
            raise VtrError(f"{source or 'tokenizer'} is not a BERT WordPiece vocabulary: it lacks {missing}")
        self._backend = backend
        self.model_max_length = int(model_max_length)
        self.source = source
        self.pad_token_id, self.unk_token_id = ids["[PAD]"], ids["[UNK]"]
        self.cls_token_id, self.sep_token_id, self.mask_token_id = ids["[CLS]"], ids["[SEP]"], ids["[MASK]"]

    # ------------------------------------------------------------------------------------------ building
    @classmethod
    def from_vocab(cls, vocab_file: str, lowercase: bool = True, strip_accents: bool | None = None,
                   chinese_chars: bool = True, model_max_length: int = DEFAULT_MAX_LENGTH) -> "BertTokenizer":
        """From a ``vocab.txt`` (one token a line, the line number its id), with BERT's basic tokenisation:
        ``lowercase`` (and accents stripped unless ``strip_accents`` says otherwise), CJK characters as words,
        punctuation split off, control characters dropped; words over 100 characters become ``[UNK]``."""
        from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

        vocab: dict[str, int] = {}
        with open(vocab_file, encoding="utf-8") as f:
            for line in f:
                vocab.setdefault(line.rstrip("\n"), len(vocab))
        if "[UNK]" not in vocab:
            raise VtrError(f"{vocab_file} is not a BERT WordPiece vocabulary: it has no [UNK]")
        backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
        backend.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=chinese_chars, strip_accents=strip_accents, lowercase=lowercase)
        backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        backend.decoder = decoders.WordPiece(prefix="##")
        backend.add_special_tokens([token for token in SPECIAL_TOKENS if token in vocab])  # "[MASK]" in a text
        return cls(backend, model_max_length, source=vocab_file)

    @classmethod
    def from_file(cls, path: str, model_max_length: int = DEFAULT_MAX_LENGTH) -> "BertTokenizer":
        """From a ``tokenizer.json`` (a whole pipeline, as Hugging Face saves it) or a ``vocab.txt``."""
        if str(path).endswith(".json"):
            from tokenizers import Tokenizer

            try:
                backend = Tokenizer.from_file(str(path))
            except Exception as e:  # noqa: BLE001 - the Rust parser's message, on one line
                raise VtrError(f"{path} is not a tokenizer.json ({str(e).splitlines()[0]})") from None
            return cls(backend, model_max_length, source=str(path))
        return cls.from_vocab(str(path), model_max_length=model_max_length)

    @classmethod
    def from_folder(cls, folder: str) -> "BertTokenizer":
        """From a tokenizer or model folder as Hugging Face writes it: its ``tokenizer.json`` when there is one
        (the whole pipeline), otherwise its ``vocab.txt`` with the options of its ``tokenizer_config.json``
        (``do_lower_case``, ``strip_accents``, ``tokenize_chinese_chars``, ``model_max_length``)."""
        options = {}
        config_file = os.path.join(folder, "tokenizer_config.json")
        if os.path.isfile(config_file):
            with open(config_file, encoding="utf-8") as f:
                options = json.load(f)
        max_length = options.get("model_max_length") or DEFAULT_MAX_LENGTH
        if max_length > 100_000:  # transformers' "unknown"
            max_length = DEFAULT_MAX_LENGTH
        pipeline = os.path.join(folder, "tokenizer.json")
        if os.path.isfile(pipeline):
            return cls.from_file(pipeline, max_length)
        vocab = os.path.join(folder, "vocab.txt")
        if not os.path.isfile(vocab):
            raise WeightsNotFoundError(f"tokenizer: {folder} holds neither tokenizer.json nor vocab.txt")
        return cls.from_vocab(vocab, lowercase=options.get("do_lower_case", True),
                              strip_accents=options.get("strip_accents"),
                              chinese_chars=options.get("tokenize_chinese_chars", True), model_max_length=max_length)

    # ------------------------------------------------------------------------------------------ encoding
    def __call__(self, text: str | Sequence[str], padding: bool | str = False, truncation: bool = False,
                 max_length: int | None = None, add_special_tokens: bool = True, return_tensors: str | None = None):
        """Token ids of one text (lists) or several (lists of lists; tensors ``[N, L]`` with ``return_tensors="pt"``).

        ``truncation=True`` keeps the first ``max_length`` (default ``model_max_length``) tokens, ``[CLS]`` and
        ``[SEP]`` included. ``padding``: False; True or ``"longest"`` (to the batch's longest); ``"max_length"``."""
        single = isinstance(text, str)
        texts = [text] if single else list(text)
        if not all(isinstance(t, str) for t in texts):
            raise TypeError("tokenizer: texts must be strings")
        rows = [encoding.ids for encoding in self._backend.encode_batch(texts, add_special_tokens=False)]
        n_special = 2 if add_special_tokens else 0
        if truncation:
            limit = self.model_max_length if max_length is None else int(max_length)
            if limit < n_special:
                raise ValueError(f"max_length={limit} leaves no room for [CLS] and [SEP]")
            rows = [row[:limit - n_special] for row in rows]
        if add_special_tokens:
            rows = [[self.cls_token_id, *row, self.sep_token_id] for row in rows]
        masks = [[1] * len(row) for row in rows]
        if padding in (True, "longest", "max_length"):
            if padding == "max_length":
                width = self.model_max_length if max_length is None else int(max_length)
            else:
                width = max(map(len, rows), default=0)
            rows = [row + [self.pad_token_id] * (width - len(row)) for row in rows]
            masks = [mask + [0] * (width - len(mask)) for mask in masks]
        elif padding not in (False, None, "do_not_pad"):
            raise ValueError(f"padding={padding!r}: use False, True, 'longest' or 'max_length'")
        types = [[0] * len(row) for row in rows]
        if return_tensors == "pt":
            import torch

            if len({len(row) for row in rows}) > 1:
                raise ValueError("texts of different lengths make no tensor: pass padding=True or 'max_length'")
            return {"input_ids": torch.tensor(rows, dtype=torch.long).view(len(rows), -1),
                    "token_type_ids": torch.tensor(types, dtype=torch.long).view(len(rows), -1),
                    "attention_mask": torch.tensor(masks, dtype=torch.long).view(len(rows), -1)}
        if return_tensors is not None:
            raise ValueError(f"return_tensors={return_tensors!r}: only 'pt' (or None, for lists)")
        if single:
            rows, types, masks = rows[0], types[0], masks[0]
        return {"input_ids": rows, "token_type_ids": types, "attention_mask": masks}

    def tokenize(self, text: str) -> list[str]:
        """The WordPiece tokens of ``text``, without ``[CLS]`` and ``[SEP]``."""
        return self._backend.encode(text, add_special_tokens=False).tokens

    def unknown_words(self, text: str) -> list[str]:
        """The parts of ``text`` the vocabulary has no token for (each becomes ``[UNK]``): emoji, most symbols,
        scripts it lacks. Each once, in order, as written in ``text``."""
        enc = self._backend.encode(text, add_special_tokens=False)
        return list(dict.fromkeys(text[a:b] for i, (a, b) in zip(enc.ids, enc.offsets) if i == self.unk_token_id))

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]):
        """The id of a token (``[UNK]``'s when the vocabulary lacks it), or the ids of a list of tokens."""
        if isinstance(tokens, str):
            found = self._backend.token_to_id(tokens)
            return self.unk_token_id if found is None else found
        return [self.convert_tokens_to_ids(token) for token in tokens]

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Text of ``ids`` (a list or a 1-D tensor), word pieces joined and spaces before punctuation removed."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        return self._backend.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    @property
    def vocab_size(self) -> int:
        return self._backend.get_vocab_size(with_added_tokens=False)

    def __len__(self) -> int:
        return self._backend.get_vocab_size(with_added_tokens=True)

    def __repr__(self) -> str:
        return f"BertTokenizer({self.source!r}, vocab={len(self)}, model_max_length={self.model_max_length})"


__all__ = ["BertTokenizer", "SPECIAL_TOKENS"]
