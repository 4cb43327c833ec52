import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from index.build import build_index, index_status
from tests.index.media import make_video
from tests.index.test_build import snapshot

REPO = Path(__file__).resolve().parents[2]


def test_two_process_embedding_equals_single_process_build(tmp_path, test_model, test_model_folder):
    root = tmp_path / "videos"
    for i in range(5):
        make_video(root / f"v{i}.mp4", 4 + 4 * i, seed=60 + i)
    (root / "broken.mp4").write_bytes(b"not a video")
    single = tmp_path / "single"
    build_index([str(root)], str(single), model=test_model, workers=0, progress=False)

    merged = tmp_path / "merged"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    # --standalone: torchrun's rendezvous binds a port the OS picks, so parallel runs never collide on one
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone",
           "-m", "index.distributed", str(root), "--out", str(tmp_path / "shards"), "--model", str(test_model_folder),
           "--index", str(merged), "--workers", "0"]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "shards").glob("shard-*")) == [
        "shard-00000.jsonl", "shard-00000.npy", "shard-00001.jsonl", "shard-00001.npy"]

    a, b = snapshot(merged), snapshot(single)
    assert set(a) == set(b)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=1e-5)
    st = index_status(str(merged))
    assert [os.path.basename(p) for p, _ in st["failed"]] == ["broken.mp4"]
    assert st["manifest"]["weights_checksum"] == index_status(str(single))["manifest"]["weights_checksum"]


def test_the_sharder_answers_to_its_earlier_module_name_too():
    """`torchrun -m index.embed` (the name before the sharder had index/distributed.py) still runs it."""
    for module in ("index.distributed", "index.embed"):
        done = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        assert "-m index.distributed" in done.stdout and "--out OUT" in done.stdout and "--index INDEX" in done.stdout
