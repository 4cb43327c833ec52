"""bench.decode_memory: each policy's chunk decoded in a fresh process, its memory read from the process."""

import json
import os

import numpy as np
import pytest

from tests.videos import write_video

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads Linux's /proc")


def test_each_policy_is_measured_in_its_own_process(tmp_path, capsys):
    from bench.decode_memory import main

    rng = np.random.default_rng(1)
    frames = np.repeat(rng.integers(0, 256, (4, 24, 32, 3), dtype=np.uint8), 10, axis=0).repeat(4, 1).repeat(4, 2)
    video = write_video(tmp_path / "v.mp4", frames, fps=10)  # 4 s, a cut a second, 128×96
    out = tmp_path / "memory.json"
    assert main([str(video), "--policies", "shots,shots-2pass,stride", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["policy"] for r in rows] == ["shots", "shots-2pass", "stride"]
    for r in rows:
        assert r["windows"] >= 1 and r["n_chunks"] == 1 and r["peak_mb"] > 100  # a process with torch in it
        assert 0 <= r["added_mb"] < r["peak_mb"] and r["result_mb"] > 0
    # shots finds the cuts: one window a shot; stride: 8 s windows every 4 s, one for 4 s
    assert rows[0]["windows"] == rows[1]["windows"] == 4 and rows[2]["windows"] == 1
    assert "shots-2pass" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([str(video), "--policies", "scenes"])
