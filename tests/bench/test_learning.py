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
