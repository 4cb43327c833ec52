"""bench.preview on the smallest cases: it runs, the 60 fps source's transcoded preview holds half the frames (at 30
fps), the copied one every frame from the keyframe before the cut, the shared converter gives the same bits, a
camera's MOV with PCM sound is copied with its sound encoded, and it writes the table and its JSON."""

import json


def test_the_bench_runs_and_thins_a_60_fps_preview(tmp_path, capsys, monkeypatch):
    import bench.preview as bench

    monkeypatch.setitem(bench.SOURCES, "tiny60", (96, 64, 60, None, ".mp4"))
    monkeypatch.setitem(bench.SOURCES, "tinypcm", (96, 64, 30, "pcm_s16le", ".MOV"))
    out = tmp_path / "preview.json"
    assert bench.main(["--sources", "tiny60,tinypcm", "--seconds", "31", "--repeats", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    fast, camera = report["rows"]
    assert fast["before_frames"] == 1680 and fast["now_frames"] == 840  # 28 s (2-30 s) at 60 fps, then at 30
    assert fast["copied"] and fast["app_frames"] == 1680  # copied, 2-30 s at 60 fps: a keyframe each second
    assert camera["copied"] and camera["app_frames"] == 840 and camera["sound"] == "pcm_s16le"
    assert report["converter"]["same_bits"] is True
    printed = capsys.readouterr().out
    assert "| tiny60 | " in printed and "| copied, sound to AAC |" in printed
