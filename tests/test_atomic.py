"""vtr.atomic: the target holds the old or the new content, never a part; no temporary file is left."""

import json
import os
import stat
import threading

import numpy as np
import pytest

from vtr.atomic import atomic_path, write_bytes_atomic, write_json_atomic, write_text_atomic


def test_writes_land_and_leave_nothing_else(tmp_path):
    target = tmp_path / "deep" / "er" / "manifest.json"  # missing parents are created
    write_json_atomic(target, {"a": [1, 2]})
    assert json.loads(target.read_text()) == {"a": [1, 2]}
    write_text_atomic(tmp_path / "t.md", "ü")
    write_bytes_atomic(tmp_path / "b.jpg", b"\xff\xd8", fsync=True)
    assert (tmp_path / "t.md").read_text(encoding="utf-8") == "ü" and (tmp_path / "b.jpg").read_bytes() == b"\xff\xd8"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["b.jpg", "manifest.json", "t.md"]


def test_a_failed_write_keeps_the_old_content(tmp_path):
    target = tmp_path / "checkpoint.pt"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_the_temporary_file_never_matches_a_glob_for_the_finished_ones(tmp_path):
    with atomic_path(tmp_path / "00000.tar") as tmp:
        tmp.write_bytes(b"half a shard")
        assert tmp.parent == tmp_path and list(tmp_path.glob("*.tar")) == []
    with atomic_path(tmp_path / "shard-00000.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, np.arange(3))  # to the open file: np.save would append ".npy" to the name
    assert np.load(tmp_path / "shard-00000.npy").tolist() == [0, 1, 2]


def test_concurrent_writers_use_their_own_temporary_files(tmp_path):
    names = []
    barrier = threading.Barrier(2)

    def write(data):
        with atomic_path(tmp_path / "preview.mp4") as tmp:
            names.append(tmp.name)
            barrier.wait()  # both temporary files exist at once
            tmp.write_bytes(data)

    threads = [threading.Thread(target=write, args=(d,)) for d in (b"one", b"two")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(names)) == 2
    assert (tmp_path / "preview.mp4").read_bytes() in (b"one", b"two")
    assert [p.name for p in tmp_path.iterdir()] == ["preview.mp4"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_a_model_folder_is_readable_as_the_umask_allows_and_an_overwrite_keeps_the_mode(tmp_path):
    """safetensors >= 0.8 creates its file 0o600 whatever the umask: a model folder vtr wrote on a lab server (or in
    a container's image, as root) was unreadable to everyone else, while its config.json was not."""
    from torch import nn

    from vtr.models.checkpoint import save_vtr

    old = os.umask(0o027)
    try:
        folder = save_vtr(nn.Linear(2, 2), tmp_path / "model", {"format": "vtr"})
        weights, config = folder / "model.safetensors", folder / "config.json"
        assert stat.S_IMODE(weights.stat().st_mode) == 0o640 == stat.S_IMODE(config.stat().st_mode)
        os.chmod(weights, 0o600)  # the owner chose: a model saved again over it keeps the choice
        save_vtr(nn.Linear(2, 2), folder, {"format": "vtr"})
        assert stat.S_IMODE(weights.stat().st_mode) == 0o600
        assert not list(folder.glob("*.tmp"))
    finally:
        os.umask(old)
