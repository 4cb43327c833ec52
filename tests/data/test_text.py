"""Caption normalisation (UMT's pre_text) and bert-base-uncased tokenisation."""

import os

import pytest
import torch

from tests.helpers_text import minilm_dir
from vtr.data.text import join_paragraph, normalize_caption, tokenize
from vtr.models.hf_bert import load_tokenizer



@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(minilm_dir())


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("A Man Is Playing The Guitar.", "a man is playing the guitar"),
        ("<person> opens the door", "person opens the door"),
        ("<PERSON> hands <person> a cup", "person hands person a cup"),
        ("Wow!!! (really?) \"yes\" *#:;~ ok, fine.", "wow really yes ok fine"),
        ("it's the dog's ball", "its the dogs ball"),
        ("a well-known up/down motion", "a well known up down motion"),
        ("self--driving car - fast", "self driving car fast"),
        ("  lots   of \t\t spaces \n", "lots of spaces"),
        ("line one\n", "line one"),
        ("a--<person>--b", "a person b"),
        ("[brackets] & <tags> stay", "[brackets] & <tags> stay"),
        ("", ""),
        ("...", ""),
    ],
)
def test_normalize_caption(raw, expected):
    assert normalize_caption(raw) == expected


def test_normalize_caption_keeps_upstream_whitespace_quirks():
    # Upstream collapses only runs of >= 2 whitespace characters and strips spaces/newlines, nothing else.
    assert normalize_caption("a\tb") == "a\tb"
    assert normalize_caption("a \tb") == "a b"


def test_normalize_caption_max_words():
    assert normalize_caption("One two, three four five.", max_words=3) == "one two three"
    assert normalize_caption("one two", max_words=5) == "one two"


def test_join_paragraph_then_normalize():
    sentences = ["A man enters.", "He sits down -- slowly.", "<person> waves"]
    assert join_paragraph(sentences) == "A man enters. He sits down -- slowly. <person> waves"
    assert normalize_caption(join_paragraph(sentences)) == "a man enters he sits down slowly person waves"
    assert join_paragraph("already one") == "already one"


def test_special_token_ids(tokenizer):
    assert (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id, tokenizer.mask_token_id) == (
        101, 102, 0, 103)
    assert tokenizer.unk_token_id == 100
    assert len(tokenizer) == 30522


def test_word_ids_match_vocab_file(tokenizer):
    with open(os.path.join(minilm_dir(), "vocab.txt"), encoding="utf-8") as f:
        vocab = {line.rstrip("\n"): i for i, line in enumerate(f)}
    words = ["the", "a", "man", "playing", "guitar", "dog", "person"]
    ids = tokenizer(" ".join(words), add_special_tokens=False)["input_ids"]
    assert ids == [vocab[w] for w in words]
    assert ids == [1996, 1037, 2158, 2652, 2858, 3899, 2711]  # bert-base-uncased's ids
    assert tokenizer("The MAN", add_special_tokens=False)["input_ids"] == [1996, 2158]  # uncased
    assert tokenizer.tokenize("guitars Café") == ["guitars", "cafe"]  # accents stripped like bert-base-uncased


def test_tokenizer_from_vocab_file_matches_folder(tokenizer):
    from_vocab = load_tokenizer(os.path.join(minilm_dir(), "vocab.txt"))
    text = "a man's dog runs across the snowy field [MASK] unaffable"
    assert from_vocab(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert from_vocab.model_max_length == 512


def test_tokenize_pads_to_max_length(tokenizer):
    out = tokenize(tokenizer, ["a man is playing the guitar", "dog"], max_length=40)
    assert set(out) == {"input_ids", "attention_mask"}
    ids, mask = out["input_ids"], out["attention_mask"]
    assert ids.dtype == torch.long and mask.dtype == torch.long
    assert ids.shape == mask.shape == (2, 40)
    assert ids[1, :3].tolist() == [101, 3899, 102]
    assert (ids[1, 3:] == 0).all() and mask[1].tolist() == [1] * 3 + [0] * 37
    assert mask[0].sum() == 8 and ids[0, 7] == 102


def test_tokenize_ignores_packaged_padding_defaults(tokenizer):
    # The package's tokenizer.json pads/truncates to 128 by default; tokenize must follow max_length only.
    out = tokenize(tokenizer, "word " * 300, max_length=200)
    assert out["input_ids"].shape == (1, 200) and out["attention_mask"].all()


def test_tokenize_truncates_keeping_cls_and_sep(tokenizer):
    out = tokenize(tokenizer, "one two three four five six seven eight nine ten", max_length=6)
    assert out["input_ids"].shape == (1, 6)
    ids = out["input_ids"][0].tolist()
    assert ids[0] == 101 and ids[-1] == 102
    assert out["attention_mask"].all()
