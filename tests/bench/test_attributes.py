import json

import pytest
import torch

import vtr
from bench.attributes import main, miss_attributes, probe
from vtr.data.synthetic import generate_corpus
from vtr.models.checkpoint import save_vtr
from vtr.models.registry import config_to_dict


def test_probe_reads_a_feature_that_is_there_and_not_one_that_is_not():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 16, generator=g)
    y = x[:, [3, 7, 11]].argmax(1)  # three classes, linear in three of the 16 dimensions
    train, test = probe(x[:300], y[:300], x[300:], y[300:])
    assert train > 90 and test > 85
    noise = torch.randint(0, 3, (400,), generator=g)  # labels the features know nothing of
    train, test = probe(x[:300], noise[:300], x[300:], noise[300:])
    assert test < 50


def test_misses_name_the_attributes_the_top_video_gets_wrong():
    entries = [{"colour": "red", "shape": "circle", "count": 1, "motion": "up"},
               {"colour": "red", "shape": "square", "count": 1, "motion": "up"},
               {"colour": "blue", "shape": "square", "count": 2, "motion": "up"}]
    itc = torch.tensor([[0.9, 0.1, 0.2],   # rows: videos, columns: captions
                        [0.95, 0.8, 0.1],  # caption 0's top video is 1: only the shape differs
                        [0.1, 0.9, 0.3]])  # caption 1's top video is 2: colour and count differ
    assert miss_attributes(itc, entries) == {"shape": 1, "colour+count": 1}


@pytest.mark.slow
def test_bench_on_a_generated_corpus(tmp_path):
    run = tmp_path / "run"
    generate_corpus(run / "corpus", size="tiny", seed=0)
    model = vtr.create_model("vtr_test")
    save_vtr(model, run / "model", config_to_dict(model.cfg, architecture="vtr_test"))
    out = tmp_path / "attributes.json"
    assert main(["--run", str(run), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["clips"] == 48 and result["heldout"] == 12
    assert set(result["probes"]) == {"colour", "shape", "count", "motion"}
    # the captions name every attribute: the text side's probe fits its 48 training clips
    assert all(row["caption ITC embedding"][0] >= 90 for row in result["probes"].values())
    assert sum(result["t2v_misses"].values()) == round(12 * (1 - result["t2v_r1"] / 100))
    with pytest.raises(SystemExit, match="no corpus"):
        main(["--run", str(tmp_path / "nothing")])
