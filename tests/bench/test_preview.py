"""bench.preview on the smallest cases: it runs, the 60 fps source's transcoded preview holds half the frames (at 30
fps), the copied one every frame from the keyframe before the cut, the shared converter gives the same bits, a
camera's MOV with PCM sound is copied with its sound encoded, an iPhone's HDR HEVC is copied (for a browser that
plays it and shows its HDR), and it writes the table and its JSON."""

import json


def test_the_bench_runs_and_thins_a_60_fps_preview(tmp_path, capsys, monkeypatch):
    import bench.preview as bench

    monkeypatch.setitem(bench.SOURCES, "tiny60", (96, 64, 60, None, ".mp4"))
    monkeypatch.setitem(bench.SOURCES, "tinypcm", (96, 64, 30, "pcm_s16le", ".MOV"))
    monkeypatch.setitem(bench.SOURCES, "tinyhevc", (96, 64, 30, "aac", ".MOV", "libx265", "hlg"))
    out = tmp_path / "preview.json"
    assert bench.main(["--sources", "tiny60,tinypcm,tinyhevc", "--seconds", "31", "--repeats", "1",
                       "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    fast, camera, iphone = report["rows"]
    assert iphone["copied"] and iphone["now_frames"] == 840  # copied for a browser that plays HEVC, ...
    assert 840 <= iphone["app_frames"] <= 840 + 16  # ... with the B-frames decoded after 30 s that are shown before
    assert fast["before_frames"] == 1680 and fast["now_frames"] == 840  # 28 s (2-30 s) at 60 fps, then at 30
    assert fast["copied"] and fast["app_frames"] == 1680  # copied, 2-30 s at 60 fps: a keyframe each second
    assert camera["copied"] and camera["app_frames"] == 840 and camera["sound"] == "pcm_s16le"
    assert report["converter"]["same_bits"] is True
    printed = capsys.readouterr().out
    assert "| tiny60 | " in printed and "| tinypcm | " in printed and "| copied, sound to AAC |" in printed
    assert "| tinyhevc | " in printed and printed.count("| copied |") == 2


def test_the_transcodes_are_timed_at_another_commit_and_here_side_by_side(tmp_path):
    """``--rev``: each transcode (the preview's, an export's) runs in a fresh process of each checkout, that commit's
    code from its own extracted tree."""
    import subprocess

    import bench.preview as bench
    from bench.encoder import checkout_of

    head = subprocess.run(["git", "-C", str(bench.ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    src = tmp_path / "tiny.mp4"
    bench.write_source(src, 64, 48, 10, 21.0)
    rows = bench.transcodes_side_by_side(src, head, repeats=1)
    assert [r["what"] for r in rows] == ["preview", "export"]
    assert [r["span"] for r in rows] == [[2.0, 30.0], [12.3, 20.3]]  # the app's preview of 12-20 s, bench.export's
    for r in rows:
        assert r["rev_s"] > 0 and r["now_s"] > 0 and r["speedup"] == r["rev_s"] / r["now_s"]
        assert r["rev_vtr"].startswith(str(checkout_of(head))) and r["now_vtr"].startswith(str(bench.ROOT))
