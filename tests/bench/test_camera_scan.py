"""bench.camera_scan on a small folder: it runs, and every scan finds exactly the motion photos (the bench asserts
it), the next one from the verdicts the first kept."""

import json


def test_the_bench_runs_and_each_scan_finds_the_motion_photos(tmp_path, capsys):
    from bench.camera_scan import main

    out = tmp_path / "camera_scan.json"
    assert main(["--photos", "12", "--motion", "3", "--width", "64", "--height", "48", "--repeats", "2",
                 "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert (report["photos"], report["motion"]) == (12, 3)
    assert set(report["ms"]) == {"videos only", "first scan", "next scan"}
    assert all(len(ms) == 2 and min(ms) > 0 for ms in report["ms"].values())
    assert "| next scan" in capsys.readouterr().out
