"""bench.animations on the smallest case: it runs, reads every frame of each file (the bench asserts it) and writes
the table and its JSON."""

import json


def test_the_bench_runs_and_reads_every_frame(tmp_path, capsys, monkeypatch):
    import bench.animations as bench

    monkeypatch.setitem(bench.CASES, "tiny", (64, 48, 6, 10))
    out = tmp_path / "animations.json"
    assert bench.main(["--cases", "tiny", "--repeats", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())["cases"]["tiny"]
    assert report["frames"] == 6 and set(report["bytes"]) == {"webp", "gif", "mp4"}
    assert set(report["ms"]) == {"draw", "draw + APNG", "read webp", "read gif", "read mp4"}
    assert "| tiny (64x48) | 6 |" in capsys.readouterr().out
