"""bench.preview on the smallest case: it runs, the 60 fps source's transcoded preview holds half the frames (at 30
fps), the copied one every frame from the keyframe before the cut, the shared converter gives the same bits, and it
writes the table and its JSON."""

import json


def test_the_bench_runs_and_thins_a_60_fps_preview(tmp_path, capsys, monkeypatch):
    import bench.preview as bench

    monkeypatch.setitem(bench.SOURCES, "tiny60", (96, 64, 60))
    out = tmp_path / "preview.json"
    assert bench.main(["--sources", "tiny60", "--seconds", "31", "--repeats", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    [row] = report["rows"]
    assert row["before_frames"] == 1680 and row["now_frames"] == 840  # 28 s (2-30 s) at 60 fps, then at 30
    assert row["copied"] and row["app_frames"] == 1680  # copied, 2-30 s at 60 fps: a keyframe each second
    assert report["converter"]["same_bits"] is True
    assert "| tiny60 | " in capsys.readouterr().out
