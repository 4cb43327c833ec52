"""bench.frames plans and summarises its sweep; bench.learning keeps each run's curves; bench.plots draws both."""

import json

import pytest

from bench import frames, learning, plots


def _row(kind, t, seconds, act, peak=400.0):
    return {"kind": kind, "frames": t, "seq_len": 1 + 196 * t, "s_per_clip": seconds, "act_mib": act,
            "peak_rss_mib": peak, "gflop": 1.0, "loadavg": 2.0}


def _frames_report():
    rows = [_row("videomamba", 8, 2.0, 40), _row("vit_sdpa", 8, 1.0, 30), _row("vit_plain", 8, 2.5, 120),
            _row("videomamba", 16, 4.0, 80), _row("vit_sdpa", 16, 8.0, 60),
            {"kind": "vit_plain", "frames": 16, "error": "timeout after 10s"}]
    return {"bench": "frames", "date_utc": "2026-12-02T10:00:00+00:00", "machine": {"cpus": 2},
            "loadavg_at_start": [3.0, 2.0, 1.0], "loadavg_at_end": [5.0, 4.0, 3.0],
            "args": {"size": "tiny", "dtype": "fp32"}, "rows": rows}


def test_sweep_interleaves_the_models_per_frame_count_with_the_same_shape():
    specs = frames.sweep_specs("tiny", [8, 64], "fp32", plain_max_frames=32)
    assert [(s["frames"], s["kind"]) for s in specs] == [(8, "videomamba"), (8, "vit_sdpa"), (8, "vit_plain"),
                                                         (64, "videomamba"), (64, "vit_sdpa")]
    vit = specs[1]
    assert (vit["dim"], vit["depth"], vit["heads"]) == (192, 24, 3)  # VideoMamba-Ti's width and depth


def test_ratios_compare_each_attention_model_with_videomamba_at_the_same_frame_count():
    r = frames.ratios(_frames_report()["rows"])
    assert [x["frames"] for x in r] == [8, 16]
    assert r[0]["vit_sdpa_time_x"] == pytest.approx(0.5) and r[0]["vit_plain_time_x"] == pytest.approx(1.25)
    assert r[1]["vit_sdpa_time_x"] == pytest.approx(2.0) and "vit_plain_time_x" not in r[1]  # that row failed
    table = frames.format_table(_frames_report()["rows"])
    assert "| 16 | 3137 | vit_sdpa | 8.000 |" in table and "error: timeout" in table


def test_learning_curves_keep_losses_and_held_out_rows_by_step():
    log = [{"step": 10, "loss": 3.0, "vtc": 3.0, "lr": 1e-3}, {"step": 20, "loss": 2.5, "vtc": 2.0, "vtm": 0.6},
           {"step": 20, "eval": {"itm": {"t2v_r1": 5.0, "v2t_r1": 4.0}, "itc": {"t2v_r1": 30.0, "v2t_r1": 25.0}}},
           {"step": 20, "diverged": "no"}]
    c = learning.learning_curves(log)
    assert c["curve"] == [{"step": 10, "loss": 3.0, "vtc": 3.0}, {"step": 20, "loss": 2.5, "vtc": 2.0, "vtm": 0.6}]
    assert c["eval_curve"] == [{"step": 20, "itm_t2v_r1": 5.0, "itm_v2t_r1": 4.0, "itc_t2v_r1": 30.0,
                                "itc_v2t_r1": 25.0}]


def _learning_report():
    curves = learning.learning_curves(
        [{"step": s, "loss": v + 0.5, "vtc": v} for s, v in ((10, 3.5), (20, 3.25), (30, 3.0))]
        + [{"step": 30, "eval": {"itc": {"t2v_r1": 40.0, "v2t_r1": 35.0}}}])
    row = {"name": "recipe", "variant": "default", "seed": 0, "chance_r1": 1.4, "run": curves}
    return {"config": "demo.yaml", "corpora": {}, "machine_start": {"cpus": 2, "load_avg_1m": 3.0},
            "machine_end": {"load_avg_1m": 4.0}, "rows": [row], "masked": [{**row, "name": "masked student",
                                                                              "run": {"steps": 3}}]}


def test_learning_series_takes_every_run_with_a_curve():
    runs = plots.learning_series({"learning": _learning_report()})
    assert len(runs) == 1  # the masked row carries no curve
    assert runs[0]["label"] == "recipe, default, seed 0" and runs[0]["vtc"] == [(10, 3.5), (20, 3.25), (30, 3.0)]
    assert runs[0]["eval"] == [{"step": 30, "itc_t2v_r1": 40.0, "itc_v2t_r1": 35.0}]
    series = plots.frame_series(_frames_report())
    assert series["vit_plain"]["frames"] == [8] and series["videomamba"]["s_per_clip"] == [2.0, 4.0]


def test_plots_are_written_from_the_results_folder(tmp_path, capsys):
    from matplotlib import image  # in the dev extra: this test never skips
    results = tmp_path / "results"
    results.mkdir()
    (results / "frames.json").write_text(json.dumps(_frames_report()))
    (results / "learning.json").write_text(json.dumps(_learning_report()))
    (results / "broken.json").write_text("{")
    assert plots.main(["--results", str(results), "--out", str(tmp_path / "plots")]) == 0
    for name in ("frames.png", "learning.png"):
        pixels = image.imread(tmp_path / "plots" / name)
        assert pixels.shape[0] > 300 and pixels.shape[1] > 800
        assert pixels[..., :3].std() > 0.05  # lines and text were drawn, not a blank canvas
    assert "skipping" in capsys.readouterr().out


def test_missing_results_are_reported_not_drawn(tmp_path, capsys):
    assert plots.main(["--results", str(tmp_path), "--out", str(tmp_path / "plots")]) == 0
    out = capsys.readouterr().out
    assert "no frames.json" in out and "no learning curves" in out
    assert not (tmp_path / "plots").exists()


def test_frames_main_runs_each_spec_in_a_worker_and_writes_the_report(tmp_path, monkeypatch):
    import bench.encoder

    seen = []

    def fake_worker(spec, timeout):  # the worker process itself is bench.encoder's, measured by its own bench
        seen.append(spec)
        return _row(spec["kind"], spec["frames"], 1.0 + spec["frames"] / 8, 10.0 * spec["frames"])

    monkeypatch.setattr(bench.encoder, "run_in_subprocess", fake_worker)
    assert frames.main(["--frames", "8,16", "--plain-max-frames", "8", "--repeats", "1",
                        "--out", str(tmp_path / "frames.json")]) == 0
    report = json.loads((tmp_path / "frames.json").read_text())
    assert [(s["kind"], s["frames"], s["repeats"]) for s in seen] == [
        ("videomamba", 8, 1), ("vit_sdpa", 8, 1), ("vit_plain", 8, 1), ("videomamba", 16, 1), ("vit_sdpa", 16, 1)]
    assert len(report["rows"]) == 5 and all("loadavg_before" in r for r in report["rows"])
    assert report["memory"].startswith("peak RSS") and report["date_utc"][:2] == "20"
    assert [r["frames"] for r in report["ratios"]] == [8, 16]
