import json

import pytest

import bench.learning as B


def test_set_reaches_every_run_and_is_recorded(tmp_path, monkeypatch):
    """``--set key=value`` goes into each run's pretraining overrides (the bench's loop with the runs faked)."""
    seen = []
    info = {"config": {"num_train": 8}, "heldout_combos": [1], "train_combos": [1], "attributes": {}}
    monkeypatch.setattr(B, "make_corpus", lambda path, variant, seed, shuffled: info)

    def fake_train(shards, run_dir, config, seed, max_steps, overrides=None, eval_every=0, corpus=None):
        seen.append(overrides)
        return {"train_wall_s": 1.0, "steps_per_s": 1.0, "model": str(run_dir / "model"),
                "rank_stage": {"wall_s": 0.5}}

    scores = {"t2v_r1": 50.0, "t2v_r5": 90.0, "v2t_r1": 40.0, "chance_r1": 1.4, "temporal_pair_acc": 95.0,
              "itm": {"t2v_r1": 60.0, "v2t_r1": 45.0}, "itm_trained": True}
    monkeypatch.setattr(B, "train_one", fake_train)
    monkeypatch.setattr(B, "score", lambda *a, **k: scores)
    out = tmp_path / "learning.json"
    assert B.main(["--work", str(tmp_path), "--seeds", "0", "1", "--variants", "default", "--no-masked",
                   "--set", "rank_steps=600", "--set", "rank_lr=3e-4", "--out", str(out)]) == 0
    assert seen == [{"rank_steps": "600", "rank_lr": "3e-4"}] * 2
    result = json.loads(out.read_text())
    assert result["set"] == {"rank_steps": "600", "rank_lr": "3e-4"}
    assert result["rows"][0]["rank_stage_s"] == 0.5 and result["itm_minus_itc_t2v_r1"]["mean"] == 10.0
    with pytest.raises(SystemExit):
        B.main(["--set", "rank_steps"])


def test_probe_goes_into_each_recipe_row(tmp_path, monkeypatch):
    """``--probe`` measures each recipe run's model with bench.attributes and keeps it in the run's row."""
    info = {"config": {"num_train": 8}, "heldout_combos": [1], "train_combos": [1], "attributes": {}}
    monkeypatch.setattr(B, "make_corpus", lambda path, variant, seed, shuffled: info)
    monkeypatch.setattr(B, "train_one", lambda *a, **k: {"train_wall_s": 1.0, "steps_per_s": 1.0,
                                                         "model": f"m{len(probed)}"})
    scores = {"t2v_r1": 50.0, "t2v_r5": 90.0, "v2t_r1": 40.0, "chance_r1": 1.4, "temporal_pair_acc": 95.0,
              "itm": {"t2v_r1": 60.0, "v2t_r1": 45.0}, "itm_trained": True}
    monkeypatch.setattr(B, "score", lambda *a, **k: scores)
    probed = []
    views = {"video ITC embedding": [90.0, 80.0], "video tokens, max": [95.0, 70.0]}

    def fake_probe(model_dir, corpus):
        probed.append(model_dir)
        return {"probes": {"colour": views, "shape": views}, "t2v_misses": {"shape": 3, "colour+shape": 1}}

    monkeypatch.setattr(B, "probe_attributes", fake_probe)
    out = tmp_path / "learning.json"
    assert B.main(["--work", str(tmp_path), "--seeds", "0", "1", "--variants", "default", "--no-masked",
                   "--probe", "--out", str(out)]) == 0
    assert probed == ["m0", "m1"]
    rows = json.loads(out.read_text())["rows"]
    assert [r["attributes"]["t2v_misses"] for r in rows] == [{"shape": 3, "colour+shape": 1}] * 2
    line = B.format_probe(rows[0]["attributes"])
    assert "shape 80/70%" in line and "4 T2V misses involve: colour 1, shape 4" in line
    assert B.main(["--work", str(tmp_path), "--seeds", "0", "--variants", "default", "--no-masked",
                   "--out", str(out)]) == 0
    assert "attributes" not in json.loads(out.read_text())["rows"][0] and len(probed) == 2
