"""Real damaged files: a video corrupt in the middle is indexed as far as it decodes and listed as partial; a file
that is not a video says so in one sentence; `kill -9` during a build keeps the committed chunks."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from index.build import build_index, index_status
from index.catalog import Catalog
from index.commands import status_command
from tests.index.media import make_video, textured_frames
from tests.index.test_build import snapshot
from tests.videos import write_video

REPO = Path(__file__).resolve().parents[2]


def damage_middle(path: Path, seed: int = 0) -> Path:
    """Overwrite a fifth of the file, from its middle on, with random bytes (the moov atom at the end survives)."""
    data = bytearray(path.read_bytes())
    mid, n = len(data) // 2, len(data) // 5
    data[mid:mid + n] = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("policy, windows", [("stride", [(0.0, 8.0)]), ("shots", [(0.0, 7.5)])])
def test_file_corrupt_in_the_middle_is_indexed_in_part(tmp_path, test_model, capsys, policy, windows):
    root = tmp_path / "videos"
    make_video(root / "good.mp4", 9, seed=1)
    damaged = damage_middle(make_video(root / "damaged.mp4", 15, seed=5))
    (root / "notes.mp4").write_bytes(b"shopping list: milk, eggs\n" * 40)  # not a video, named like one
    idx = tmp_path / "idx"
    report = build_index([str(root)], str(idx), model=test_model, workers=1, progress=False, window_policy=policy)

    assert report.total_files == 2 and report.failed == 1 and report.partial == 1
    st = index_status(str(idx))
    [(path, reason)] = st["partial"]
    assert path == str(damaged)
    # frames 0-74 of 150 decode: indexed up to 7.5 s, and the reason says so (stride plans 3 windows over the 15 s,
    # shots 2: no cut, at most 8 s each; cut detection skips the damaged packets instead of failing the file)
    planned = {"stride": 3, "shots": 2}[policy]
    assert "cannot be decoded past 7.5 s of 15.0 s" in reason and f"1 of {planned} windows" in reason
    cat = Catalog(idx / "catalog.sqlite")
    try:
        row = cat.file_by_path(str(damaged))
        assert row.status == "ok" and [(w.start, w.end) for w in cat.windows_of(row.id)] == windows
    finally:
        cat.close()
    # a non-video: one sentence about the file, no server path, no errno, no decoder name
    [(bad, why)] = st["failed"]
    assert bad == str(root / "notes.mp4") and why == "not a video file, or damaged beyond reading"

    capsys.readouterr()
    status_command(index=str(idx))
    out = capsys.readouterr().out
    assert "1 files indexed in part" in out and "damaged.mp4: the video cannot be decoded past 7.5 s" in out
    from vtr.models.checkpoint import state_dict_checksum

    # the manifest pins the tensors' sha256, which is not the weights file's: the line says which it is
    assert f"(sha256 of its tensors {state_dict_checksum(test_model)[:12]})" in out

    from app.ui import _problem_rows, _status_markdown

    assert "1** indexed in part" in _status_markdown(st, idx)
    assert [str(damaged), f"indexed in part: {reason}"] in _problem_rows(st)
    again = build_index([str(root)], str(idx), model=test_model, workers=0, progress=False)  # its own policy
    assert (again.embedded_windows, again.partial, again.failed) == (0, 0, 0)  # unchanged files stay as they are


def test_file_cut_short_is_listed_as_indexed_in_part(tmp_path, test_model):
    """A Matroska file copied in part keeps its header (which declares the whole duration) and loses its tail; its
    packets just stop, so it decodes without an error. It is indexed as far as it goes and listed as partial; a
    whole file, and one whose audio runs on after its video, are not."""
    root = tmp_path / "videos"
    root.mkdir()
    whole = write_video(root / "whole.mkv", textured_frames(12, seed=3), fps=10, codec="mpeg4")
    data = whole.read_bytes()
    cut = root / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * 0.4)])  # an interrupted copy
    write_video(root / "long_audio.mkv", textured_frames(3, seed=4), fps=10, codec="mpeg4", audio_seconds=9)
    idx = tmp_path / "idx"
    report = build_index([str(root)], str(idx), model=test_model, workers=1, progress=False)

    assert (report.total_files, report.failed, report.partial) == (3, 0, 1)
    [(path, reason)] = index_status(str(idx))["partial"]
    assert path == str(cut) and "of the 12.0 s its header declares (cut short" in reason
    assert "windows indexed" not in reason  # its windows were planned on what is there: all of them are indexed
    cat = Catalog(idx / "catalog.sqlite")
    try:
        row = cat.file_by_path(str(cut))
        assert row.status == "ok" and 2 < row.duration < 8  # indexed as far as its data goes
        assert cat.windows_of(row.id) and max(w.end for w in cat.windows_of(row.id)) <= row.duration + 1e-6
        for name in ("whole.mkv", "long_audio.mkv"):
            r = cat.file_by_path(str(root / name))
            assert r.status == "ok" and r.error is None, (name, r.error)
    finally:
        cat.close()


KILL_AT_THIRD_BATCH = """
import sys, time
import index.build as b
from index.embed import WindowEmbedder

calls, real = 0, WindowEmbedder.__call__


def held(self, frames, groups=None):
    global calls
    calls += 1
    if calls == 3:  # two batches embedded and committed: say so, then hang until killed
        open(sys.argv[4], "w").close()
        time.sleep(3600)
    return real(self, frames, groups)


WindowEmbedder.__call__ = held
b.build_index([sys.argv[1]], sys.argv[2], model=sys.argv[3], workers=1, batch_size=4, chunk_windows=4,
              progress=False, window_policy="stride")
"""


def committed_chunks(catalog_path) -> int:
    try:
        with sqlite3.connect(f"file:{catalog_path}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


def test_kill_9_during_a_build_keeps_committed_chunks_and_resumes_inside_the_file(tmp_path, test_model_folder):
    root = tmp_path / "videos"
    make_video(root / "long.mp4", 60, seed=31)  # 14 windows: 4 chunks of 4, 4, 4, 2
    make_video(root / "short.mp4", 6, seed=32)  # 1 window
    idx, marker = tmp_path / "idx", tmp_path / "held"
    proc = subprocess.Popen([sys.executable, "-c", KILL_AT_THIRD_BATCH, str(root), str(idx), str(test_model_folder),
                             str(marker)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(1200):  # at most 2 minutes: the builder starts, decodes, embeds two batches
            if marker.exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert marker.exists(), "the build never reached its third batch"
        assert committed_chunks(idx / "catalog.sqlite") >= 1
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    # what the kill left: long.mp4 pending with chunks 0 and 1 (8 windows), short.mp4 done
    st = index_status(str(idx))
    assert st["files"] == 1 and st["pending"] == [str(root / "long.mp4")]
    cat = Catalog(idx / "catalog.sqlite")
    try:
        long_id = cat.file_by_path(str(root / "long.mp4")).id
        assert sorted(cat.committed_chunks(long_id)) == [0, 1]
        kept = {w.id: (w.start, w.end) for w in cat.windows_of(long_id)}
    finally:
        cat.close()
    assert len(kept) == 8

    report = build_index([str(root)], str(idx), model=str(test_model_folder), workers=1, batch_size=4,
                         chunk_windows=4, progress=False)  # the index's own policy (stride) when none is named
    assert report.resumed_windows == 8 and report.embedded_windows == 14 - 8
    assert "8 resumed from an interrupted build" in report.summary()
    cat = Catalog(idx / "catalog.sqlite")
    try:
        windows = cat.windows_of(long_id)
        assert {w.id: (w.start, w.end) for w in windows if w.id in kept} == kept  # the committed ones were kept
        assert len(windows) == 14 and cat.file_by_path(str(root / "long.mp4")).status == "ok"
    finally:
        cat.close()
    fresh = tmp_path / "fresh"
    build_index([str(root)], str(fresh), model=str(test_model_folder), workers=0, progress=False,
                window_policy="stride")
    a, b = snapshot(idx), snapshot(fresh)
    assert set(a) == set(b)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=1e-5)


def test_damaged_file_is_cut_into_the_same_windows_whatever_the_chunking(tmp_path, test_model):
    """Chunks of a damaged file are planned the same way every time, so a resumed build finds the same windows
    (stride: the whole file's plan, whatever the chunk size; shots: each chunk's span planned alone, the same in
    the build process and in a decode worker)."""
    root = tmp_path / "videos"
    damage_middle(make_video(root / "v.mp4", 30, seed=9), seed=1)
    a = build_index([str(root)], str(tmp_path / "a"), model=test_model, workers=0, chunk_windows=2, progress=False,
                    window_policy="stride")
    b = build_index([str(root)], str(tmp_path / "b"), model=test_model, workers=1, chunk_windows=16, progress=False,
                    window_policy="stride")
    c = build_index([str(root)], str(tmp_path / "c"), model=test_model, workers=0, chunk_windows=2, progress=False)
    d = build_index([str(root)], str(tmp_path / "d"), model=test_model, workers=1, chunk_windows=2, progress=False)
    assert a.partial == b.partial == 1 and 0 < a.total_windows == b.total_windows < 7  # 7 windows when whole
    assert c.partial == d.partial == 1 and 0 < c.total_windows == d.total_windows < 4  # shots: 4 when whole
    for one, other in (("a", "b"), ("c", "d")):
        sa, sb = snapshot(tmp_path / one), snapshot(tmp_path / other)
        assert set(sa) == set(sb)
        for key in sa:
            np.testing.assert_allclose(sa[key], sb[key], atol=1e-5)


def test_a_name_that_is_not_utf8_is_listed_as_failed_and_stops_nothing(tmp_path, test_model, capsys):
    # a Latin-1 name from an old archive: Python holds it with a lone surrogate, which sqlite refused (the whole
    # build stopped with UnicodeEncodeError)
    root = tmp_path / "videos"
    make_video(root / "ok.mp4", 5, seed=1)
    latin1 = os.fsdecode(os.fsencode(str(root)) + b"/caf\xe9.mp4")
    make_video(latin1, 5, seed=2)
    idx = tmp_path / "idx"
    report = build_index([str(root)], str(idx), model=test_model, workers=0, progress=False)
    shown = str(root / "caf\\xe9.mp4")
    assert report.failures == [(shown, "its name is not valid UTF-8 (rename it to index it)")]
    assert report.total_files == 1
    assert status_command(str(idx)) == 0
    assert "caf\\xe9.mp4: its name is not valid UTF-8" in capsys.readouterr().out
    again = build_index([str(root)], str(idx), model=test_model, workers=0, progress=False)
    assert (again.failed, again.unchanged, again.added) == (0, 2, 0)
