import json

from bench.long_captions import PHRASE, lengthen, lengthen_corpus
from vtr.data.shards import sample_captions
from vtr.data.synthetic import generate_corpus
from vtr.data.text import normalize_caption


def test_captions_get_the_phrase_before_their_motion_in_shards_and_held_out_set(tmp_path):
    assert lengthen("two red circles move up") == f"two red circles{PHRASE} move up"
    assert lengthen("a cyan diamond shows up") == f"a cyan diamond{PHRASE} shows up"
    src = tmp_path / "corpus"
    generate_corpus(src, size="tiny", seed=0)
    dst = lengthen_corpus(src, tmp_path / "long")
    before, after = sample_captions(str(src / "shards")), sample_captions(str(dst / "shards"))
    assert sorted(after) == sorted(normalize_caption(lengthen(c)) for c in before) and len(after) == 48
    rows = json.loads((dst / "heldout" / "annotations.json").read_text())
    assert all(PHRASE in r["caption"] and PHRASE in r["twin_caption"] for r in rows) and len(rows) == 12
