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


def test_masked_seeds_all_trains_a_student_against_every_run_and_averages_them(tmp_path, monkeypatch):
    """By default the masked student runs against the first seed of each variant; ``--masked-seeds all`` runs one
    against every seed's run, reports each run's ratios and their mean."""
    info = {"config": {"num_train": 8}, "heldout_combos": [1], "train_combos": [1], "attributes": {}}
    monkeypatch.setattr(B, "make_corpus", lambda path, variant, seed, shuffled: info)
    runs = []

    def fake_train(shards, run_dir, config, seed, max_steps, overrides=None, eval_every=0, corpus=None):
        runs.append((run_dir.name, seed))
        student = run_dir.name == "masked"
        return {"train_wall_s": 1.0, "steps_per_s": 2.0 if student else 1.0, "steps_per_s_logged": 1.0,
                "masked_phase_steps_per_s": 2.5, "model": str(run_dir / "model")}

    r1 = iter([50.0, 45.0, 60.0, 57.0])  # recipe seed 0, its student, recipe seed 1, its student
    monkeypatch.setattr(B, "train_one", fake_train)
    monkeypatch.setattr(B, "score", lambda *a, **k: {"t2v_r1": next(r1), "t2v_r5": 90.0, "v2t_r1": 40.0,
                                                     "chance_r1": 1.4, "temporal_pair_acc": 95.0, "itm": None,
                                                     "itm_trained": False})
    monkeypatch.setattr(B, "student_overrides", lambda *a, **k: {})
    out = tmp_path / "learning.json"
    assert B.main(["--work", str(tmp_path), "--seeds", "0", "1", "--variants", "default", "--masked-seeds", "all",
                   "--out", str(out)]) == 0
    assert runs == [("recipe", 0), ("masked", 0), ("recipe", 1), ("masked", 1)]
    result = json.loads(out.read_text())
    assert [m["vs_unmasked"]["t2v_r1_ratio"] for m in result["masked"]] == [0.9, 0.95]
    mean = result["masked_mean"][B.student_name(B.MASKED["vl_mask_ratio"])]
    assert mean["t2v_r1_ratio"] == {"mean": 0.925, "min": 0.9, "max": 0.95, "n": 2}
    assert mean["steps_per_s_ratio"]["mean"] == 2.0
    assert result["targets"]["masked_steps_per_s_ge_1_5x"] and result["targets"]["masked_r1_ge_90pct"]
    runs.clear()
    r1 = iter([50.0, 45.0, 60.0])
    assert B.main(["--work", str(tmp_path), "--seeds", "0", "1", "--variants", "default", "--out", str(out)]) == 0
    assert runs == [("recipe", 0), ("masked", 0), ("recipe", 1)]
    assert [m["t2v_r1_ratio"]["n"] for m in json.loads(out.read_text())["masked_mean"].values()] == [1]


def test_stage_two_mask_trains_a_student_per_ratio_against_the_same_run(tmp_path, monkeypatch):
    """``--stage-two-mask 0 0.5``: two students per recipe run, stage 2 unmasked and masked 50%, each with its own
    folder, name and mean ratios; the targets are judged on the first ratio's students (mean R@1 ratio, every
    run's steps/s)."""
    info = {"config": {"num_train": 8}, "heldout_combos": [1], "train_combos": [1], "attributes": {}}
    monkeypatch.setattr(B, "make_corpus", lambda path, variant, seed, shuffled: info)
    runs = []

    def fake_train(shards, run_dir, config, seed, max_steps, overrides=None, eval_every=0, corpus=None):
        runs.append((run_dir.name, (overrides or {}).get("vl_mask_ratio")))
        student = run_dir.name != "recipe"
        return {"train_wall_s": 1.0, "steps_per_s": 1.8 if student else 1.0, "steps_per_s_logged": 1.0,
                "masked_phase_steps_per_s": None, "model": str(run_dir / "model")}

    # recipe seed 0, its two students (stage 2 unmasked, masked 50%), recipe seed 1, its two students
    r1 = iter([50.0, 47.5, 40.0, 60.0, 52.0, 48.0])
    monkeypatch.setattr(B, "train_one", fake_train)
    monkeypatch.setattr(B, "score", lambda *a, **k: {"t2v_r1": next(r1), "t2v_r5": 90.0, "v2t_r1": 40.0,
                                                     "chance_r1": 1.4, "temporal_pair_acc": 95.0, "itm": None,
                                                     "itm_trained": False})
    out = tmp_path / "learning.json"
    assert B.main(["--work", str(tmp_path), "--seeds", "0", "1", "--variants", "default", "--masked-seeds", "all",
                   "--stage-two-mask", "0", "0.5", "--out", str(out)]) == 0
    unmasked, masked = B.student_dir(0.0), B.student_dir(0.5)
    assert unmasked != masked
    assert runs == [("recipe", None), (unmasked, 0.0), (masked, 0.5)] * 2
    result = json.loads(out.read_text())
    assert [m["name"] for m in result["masked"]] == [B.student_name(0.0), B.student_name(0.5)] * 2
    assert B.student_name(0.0) == "masked student (stage 2 unmasked)"
    assert B.student_name(0.5) == "masked student (stage 2 masked 50%)"
    means = {k: v["t2v_r1_ratio"]["mean"] for k, v in result["masked_mean"].items()}
    assert means == {B.student_name(0.0): 0.908, B.student_name(0.5): 0.8}  # (0.95 + 0.867) / 2, (0.8 + 0.8) / 2
    assert result["targets"]["masked_r1_ge_90pct"] and result["targets"]["masked_steps_per_s_ge_1_5x"]
    assert "masked_phase_steps_per_s_ratio" not in result["masked_mean"][B.student_name(0.0)]
    r1 = iter([50.0, 40.0, 47.5])  # the other order: the 50%-masked students decide the targets
    assert B.main(["--work", str(tmp_path), "--seeds", "0", "--variants", "default", "--stage-two-mask", "0.5", "0",
                   "--out", str(out)]) == 0
    assert not json.loads(out.read_text())["targets"]["masked_r1_ge_90pct"]


def test_student_overrides_set_stage_two(tmp_path):
    """The student's stages from the demo config: stage 1 for STAGE_ONE_FRACTION of the steps, the text losses'
    offsets shifted past it, stage 2's mask ratio from ``stage_two_mask``. (Which steps were masked, for the steps/s
    of the masked steps, the trainer's log says: ``masked_fraction``.)"""
    from demo.run import config_path
    from pretrain.config import load_config

    config = config_path("demo.yaml")
    o = B.student_overrides(config, 200, "teacher/model", 0.5, stage_two_mask=0.0)
    cfg = load_config(str(config), overrides={**o, "max_steps": 200})
    assert (cfg.text_start, cfg.vtm_start, cfg.mask_steps, cfg.vl_mask_ratio) == (100, 200, 180, 0.0)
    assert cfg.teacher == "teacher/model" and cfg.mask_ratio == B.MASKED["mask_ratio"]
    cfg = load_config(str(config), overrides={**B.student_overrides(config, 200, "t", 0.5), "max_steps": 200})
    assert cfg.vl_mask_ratio == B.MASKED["vl_mask_ratio"]
