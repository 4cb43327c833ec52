"""bench.follow on a small index: it runs, and after every change both ways leave the store holding the catalog's
windows (the bench asserts it)."""

import json


def test_the_bench_runs_and_both_ways_catch_up_exactly(tmp_path, capsys):
    from bench.follow import main

    out = tmp_path / "follow.json"
    assert main(["--windows", "600", "--repeats", "2", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["windows"] == 600 and set(report["ratio_first_written_over_counted"]) == {
        "one file added (50 windows)", "one file deleted"}
    assert len(report["ms"]) == 7 and all(len(ms) == 2 and min(ms) > 0 for ms in report["ms"].values())
    assert "| nothing changed" in capsys.readouterr().out
