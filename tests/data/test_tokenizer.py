"""vtr's BERT tokenizer against transformers' on the same files: the same ids, lengths, masks and decoded text."""

import json
import os
import random
import shutil
import subprocess
import sys

import pytest
import torch

from tests.helpers_text import minilm_dir
from vtr.data.tokenizer import BertTokenizer
from vtr.errors import VtrError, WeightsNotFoundError
from vtr.models.hf_bert import load_tokenizer

transformers = pytest.importorskip("transformers")

TRICKY = [
    "", " ", "a", "A man is playing the guitar.", "THE Café déjà vu — naïve façade", "résumé Ångström Øresund",
    "isn't it? yes! (maybe) [sic] {x} <person> $5.99 & 50% off #tag @user ~ ^_^",
    "你好世界 日本語のテキスト 한국어 텍스트", "emoji 🎸🐕‍🦺 and ✨ sparkles", "tab\tnew\nline\r\ncarriage",
    "zero\u200bwidth non\u00a0breaking soft\u00adhyphen", "control\x00\x01\x7f chars", "[MASK] [mask] [CLS] x [SEP]",
    "a" * 99, "b" * 100, "c" * 101, "unaffable unbelievably antidisestablishmentarianism", "1,234.56 3rd 10:30pm",
    "Ⅻ ﬁne ｆｕｌｌｗｉｄｔｈ ℌ", "Ελληνικά кириллица עברית العربية", "word " * 300,
]


def _random_texts(n: int, seed: int = 0) -> list[str]:
    """Texts drawn from letters, accents, CJK, emoji, punctuation, control and space characters."""
    rng = random.Random(seed)
    pools = ["abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", "àáâãäåçèéêëìíîïñòóôõöùúûüýÿœßÆØ",
             "的一是不了人我在有他这中大来上个们到说", "🎸🐕✨😀👍🏽", ".,;:!?'\"()[]{}<>-_/\\|@#$%^&*+=~`", " \t\n\u3000\u00a0",
             "\x00\x07\u200b\u200d\ufeff"]
    texts = []
    for _ in range(n):
        length = rng.randint(0, 60)
        texts.append("".join(rng.choice(rng.choice(pools)) for _ in range(length)))
    return texts


TEXTS = TRICKY + _random_texts(300)


def _pairs(tmp_path_factory):
    """(ours, transformers') for every way vtr builds a tokenizer: the package's folder (tokenizer.json), its
    vocab.txt as a file, a folder of vocab.txt alone, and a cased folder (tokenizer_config.json)."""
    from transformers import BertTokenizerFast

    vocab = os.path.join(minilm_dir(), "vocab.txt")
    plain = tmp_path_factory.mktemp("vocab_only")
    shutil.copy(vocab, plain / "vocab.txt")
    cased = tmp_path_factory.mktemp("cased")
    shutil.copy(vocab, cased / "vocab.txt")
    (cased / "tokenizer_config.json").write_text(json.dumps(
        {"do_lower_case": False, "tokenize_chinese_chars": False, "model_max_length": 64}))
    found = {
        "package folder": (load_tokenizer(minilm_dir()), BertTokenizerFast.from_pretrained(minilm_dir())),
        "vocab file": (load_tokenizer(vocab), BertTokenizerFast(vocab=vocab, do_lower_case=True)),
        "vocab folder": (load_tokenizer(str(plain)), BertTokenizerFast.from_pretrained(str(plain))),
        "cased folder": (load_tokenizer(str(cased)), BertTokenizerFast.from_pretrained(str(cased))),
    }
    for _, theirs in found.values():
        if theirs.model_max_length > 100_000:  # transformers' "unknown": BERT's 512 positions, as vtr always read it
            theirs.model_max_length = 512
    return found


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return _pairs(tmp_path_factory)


SOURCES = ["package folder", "vocab file", "vocab folder", "cased folder"]


@pytest.mark.parametrize("source", SOURCES)
def test_ids_and_tokens_match_transformers(pairs, source):
    ours, theirs = pairs[source]
    assert isinstance(ours, BertTokenizer)
    for text in TEXTS:
        assert ours(text)["input_ids"] == theirs(text)["input_ids"], text
        assert ours(text, add_special_tokens=False)["input_ids"] == theirs(text, add_special_tokens=False)[
            "input_ids"], text
        assert ours.tokenize(text) == theirs.tokenize(text), text


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("max_length", [2, 3, 8, 40])
def test_padded_truncated_batches_match_transformers(pairs, source, max_length):
    ours, theirs = pairs[source]
    for start in range(0, len(TEXTS), 64):
        batch = TEXTS[start:start + 64]
        a = ours(batch, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
        b = theirs(batch, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
        for key in ("input_ids", "attention_mask", "token_type_ids"):
            assert a[key].dtype == torch.long and torch.equal(a[key], b[key]), key
    a = ours(TEXTS[:20], padding=True, truncation=True, max_length=max_length)
    b = theirs(TEXTS[:20], padding=True, truncation=True, max_length=max_length)
    assert a["input_ids"] == b["input_ids"] and a["attention_mask"] == b["attention_mask"]


@pytest.mark.parametrize("source", SOURCES)
def test_decode_special_ids_and_lengths_match_transformers(pairs, source):
    ours, theirs = pairs[source]
    for text in TEXTS:
        ids = theirs(text, truncation=True)["input_ids"]
        assert ours.decode(ids) == theirs.decode(ids), text
        assert ours.decode(torch.tensor(ids), skip_special_tokens=True) == theirs.decode(ids, skip_special_tokens=True)
    for name in ("cls_token_id", "sep_token_id", "pad_token_id", "mask_token_id", "unk_token_id", "vocab_size",
                 "model_max_length"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert len(ours) == len(theirs)
    assert ours("word " * 600, truncation=True)["input_ids"] == theirs("word " * 600, truncation=True)["input_ids"]
    tokens = ["[MASK]", "guitar", "##s", "no-such-token"]
    assert ours.convert_tokens_to_ids(tokens) == theirs.convert_tokens_to_ids(tokens)


def test_loading_a_tokenizer_imports_no_transformers():
    # The point of the class: a query costs no transformers import (0.8 s and 45 MiB of every `vtr search`).
    code = ("import sys; from vtr.models.hf_bert import load_tokenizer; "
            f"t = load_tokenizer({minilm_dir()!r}); t(['a dog'], padding='max_length', truncation=True, "
            "max_length=8, return_tensors='pt'); print(sorted(m for m in sys.modules if m.startswith('transformers')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_bad_requests_and_files_are_refused(tmp_path):
    tokenizer = load_tokenizer(minilm_dir())
    with pytest.raises(ValueError, match="padding"):
        tokenizer(["a"], padding="middle")
    with pytest.raises(ValueError, match="different lengths"):
        tokenizer(["a", "a b c"], return_tensors="pt")
    with pytest.raises(ValueError, match="no room"):
        tokenizer(["a"], truncation=True, max_length=1)
    with pytest.raises(TypeError):
        tokenizer([b"bytes"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsNotFoundError, match="neither tokenizer.json nor vocab.txt"):
        load_tokenizer(str(tmp_path / "empty"))
    (tmp_path / "words.txt").write_text("hello\nworld\n")
    with pytest.raises(VtrError, match="not a BERT WordPiece vocabulary"):
        load_tokenizer(str(tmp_path / "words.txt"))
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        load_tokenizer(str(tmp_path / "missing" / "vocab.txt"))
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(VtrError, match="is not a tokenizer.json"):
        load_tokenizer(str(tmp_path / "tokenizer.json"))


def test_a_tokenizer_json_file_alone_gives_the_folder_s_ids():
    from_json = load_tokenizer(os.path.join(minilm_dir(), "tokenizer.json"))
    folder = load_tokenizer(minilm_dir())
    for text in TEXTS[:60]:
        assert from_json(text)["input_ids"] == folder(text)["input_ids"]


def test_unknown_words_are_the_parts_that_read_as_unk():
    tok = BertTokenizer.from_folder(minilm_dir())
    assert tok.unknown_words("Café ☃ SNOW 🐶🐶 Ünïcode") == ["☃", "🐶🐶"]  # as written, each once
    assert tok.unknown_words("🐶 x 🐶") == ["🐶"]
    assert tok.unknown_words("a dog on the beach") == []
    assert tok.tokenize("☃") == ["[UNK]"]
