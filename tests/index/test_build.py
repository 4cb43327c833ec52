import io
import os
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import torch

import index.build as build_mod
from index.build import build_index, index_status, remove_from_index
from index.layout import thumbnail_path
from index.catalog import Catalog
from index.store import VectorStore
from index.windows import Window, window_frame_indices
from tests.index.media import make_broken, make_video, textured_frames
from tests.videos import write_video
from vtr.data.video import Clock


def snapshot_windows(idx) -> list:
    """(file row, window row) of every window of an index folder's indexed files."""
    cat = Catalog(Path(idx) / "catalog.sqlite")
    try:
        return [(f, w) for f in cat.files("ok") for w in cat.windows_of(f.id)]
    finally:
        cat.close()


def snapshot(idx) -> dict:
    """{(file name, start, end): vector} of an index folder, checked for duplicates and store/catalog agreement."""
    cat = Catalog(Path(idx) / "catalog.sqlite")
    try:
        out = {}
        for f in cat.files("ok"):
            for w, vec in zip(cat.windows_of(f.id), cat.vectors_of(f.id)):
                key = (os.path.basename(f.path), w.start, w.end)
                assert key not in out, f"duplicate window {key}"
                out[key] = vec
        store = VectorStore.load(Path(idx) / "vectors.faiss", "Flat")
        assert np.array_equal(np.sort(store.ids()), cat.window_ids())
        assert cat.counts()["pending"] == 0
    finally:
        cat.close()
    return out


@pytest.fixture
def collection(tmp_path):
    root = tmp_path / "videos"
    make_video(root / "a.mp4", 3, seed=1)
    make_video(root / "trip" / "b.mp4", 14, seed=2)
    make_video(root / "c.mkv", 9, seed=3)
    return root


def test_build_indexes_good_files_and_records_bad_ones(collection, tmp_path, test_model):
    broken = make_broken(collection / "broken")
    idx = tmp_path / "idx"
    report = build_index([str(collection)], str(idx), model=test_model, workers=2, progress=False,
                         window_policy="stride")
    st = index_status(str(idx))
    assert st["files"] == 3 and report.total_files == 3
    # windows: 3 s -> 1, 14 s -> 0-8, 4-12, 6-14, 9 s -> 0-8, 1-9
    assert st["windows"] == 6
    failed = {os.path.basename(p): reason for p, reason in st["failed"]}
    assert set(failed) == set(broken), failed
    assert "empty" in failed["empty.mp4"]
    assert "dangling" in failed["dangling.mp4"]
    assert "no video stream" in failed["audio_only.mp4"]
    assert failed["song.mp4"] == "no video stream: sound with a cover picture"  # was "damaged"
    assert all(reason for reason in failed.values())
    m = st["manifest"]
    assert (m["num_frames"], m["img_size"], m["window_s"], m["stride_s"], m["embed_dim"]) == (4, 32, 8.0, 4.0, 16)
    assert m["index_factory"] == "Flat" and m["weights_checksum"]
    snap = snapshot(idx)
    assert ("b.mp4", 6.0, 14.0) in snap
    cat = Catalog(idx / "catalog.sqlite")
    ids = cat.window_ids()
    cat.close()
    assert all(thumbnail_path(idx, i).read_bytes()[:2] == b"\xff\xd8" for i in ids)  # JPEG per window
    # a second build changes nothing and does not retry the failures
    again = build_index([str(collection)], str(idx), model=test_model, workers=0, progress=False,
                        window_policy="stride")
    assert (again.added, again.changed, again.deleted, again.failed, again.embedded_windows) == (0, 0, 0, 0, 0)


def test_files_an_older_vtr_failed_on_are_tried_once_more(tmp_path, test_model, monkeypatch):
    """A file an older vtr could not read stays failed while it does not change (a damaged file is not read on every
    update). A vtr that reads more (``READERS_VERSION``) tries an older index's failures once: the file is indexed,
    and the run says so; the update after it tries nothing."""
    import vtr.data.video
    from index.build import READERS_VERSION
    from vtr.errors import VideoReadError

    root = tmp_path / "videos"
    make_video(root / "plain.mp4", 3, seed=1)
    make_video(root / "new_kind.mp4", 3, seed=2)  # a kind of file the older vtr could not read
    reader = vtr.data.video.PyAVVideoReader.__init__

    def older(self, source, name, *args, **kwargs):
        if str(source).endswith("new_kind.mp4"):
            raise VideoReadError(name, "not a video file, or damaged beyond reading")
        reader(self, source, name, *args, **kwargs)
    monkeypatch.setattr(vtr.data.video.PyAVVideoReader, "__init__", older)
    idx = tmp_path / "idx"
    first = build_index([str(root)], str(idx), model=test_model, workers=0, progress=False)
    assert (first.added, first.failed) == (2, 1) and index_status(str(idx))["files"] == 1
    monkeypatch.undo()
    again = build_index(None, str(idx), model=test_model, workers=0, progress=False)  # the same vtr: not tried
    assert (again.retried, again.unchanged, again.added) == (0, 2, 0)
    cat = Catalog(idx / "catalog.sqlite")
    assert cat.get_meta("readers_version") == READERS_VERSION
    with cat.transaction():
        cat.set_meta("readers_version", READERS_VERSION - 1)  # as an older vtr left it
    cat.close()
    newer = build_index(None, str(idx), model=test_model, workers=0, progress=False)
    assert (newer.retried, newer.failed, newer.unchanged) == (1, 0, 1) and newer.embedded_windows > 0
    assert "1 that failed before tried again" in newer.summary()
    assert index_status(str(idx))["files"] == 2 and not index_status(str(idx))["failed"]
    last = build_index(None, str(idx), model=test_model, workers=0, progress=False)
    assert (last.retried, last.embedded_windows) == (0, 0)


def test_incremental_add_change_delete_rename(collection, tmp_path, test_model):
    idx = tmp_path / "idx"
    build_index([str(collection)], str(idx), model=test_model, workers=0, progress=False, window_policy="stride")
    before = snapshot(idx)
    cat = Catalog(idx / "catalog.sqlite")
    c_ids = [w.id for w in cat.windows_of(cat.file_by_path(str(collection / "c.mkv")).id)]
    cat.close()

    make_video(collection / "new" / "d.mp4", 5, seed=4)  # added
    make_video(collection / "a.mp4", 4, seed=11)  # changed content
    os.remove(collection / "trip" / "b.mp4")  # deleted
    os.rename(collection / "c.mkv", collection / "trip" / "c_renamed.mkv")  # renamed: no re-embedding
    report = build_index(None, str(idx), model=test_model, workers=0, progress=False)
    assert (report.added, report.changed, report.deleted, report.renamed) == (1, 1, 1, 1)
    assert report.embedded_windows == 2  # d (1 window) + a (1 window)

    after = snapshot(idx)
    assert {k[0] for k in after} == {"a.mp4", "c_renamed.mkv", "d.mp4"}
    assert not np.allclose(after[("a.mp4", 0.0, 4.0)], before[("a.mp4", 0.0, 3.0)])
    for (name, s, e), vec in before.items():
        if name == "c.mkv":
            np.testing.assert_array_equal(after[("c_renamed.mkv", s, e)], vec)
    cat = Catalog(idx / "catalog.sqlite")
    assert [w.id for w in cat.windows_of(cat.file_by_path(str(collection / "trip" / "c_renamed.mkv")).id)] == c_ids
    cat.close()
    # the index equals a fresh build of the same folder
    fresh = tmp_path / "fresh"
    build_index([str(collection)], str(fresh), model=test_model, workers=0, progress=False, window_policy="stride")
    fresh_snap = snapshot(fresh)
    assert set(fresh_snap) == set(after)
    for key in after:
        np.testing.assert_allclose(after[key], fresh_snap[key], atol=1e-5)


def test_interrupted_build_resumes_to_the_same_index(tmp_path, test_model, monkeypatch):
    root = tmp_path / "videos"
    for i in range(5):
        make_video(root / f"v{i}.mp4", 5 + 3 * i, seed=20 + i)
    full = tmp_path / "full"
    build_index([str(root)], str(full), model=test_model, workers=0, progress=False, window_policy="stride")

    real = build_mod.embed_chunks

    def crashing(*args, **kwargs):
        for n, item in enumerate(real(*args, **kwargs)):
            if n == 2:
                raise KeyboardInterrupt  # Ctrl-C after two files (one chunk each) were committed
            yield item

    idx = tmp_path / "idx"
    monkeypatch.setattr(build_mod, "embed_chunks", crashing)
    with pytest.raises(KeyboardInterrupt):
        build_index([str(root)], str(idx), model=test_model, workers=0, progress=False, window_policy="stride")
    st = index_status(str(idx))
    assert st["files"] == 2 and len(st["pending"]) == 3
    # the interrupted index is usable: search sees the committed files
    from index.search import VideoIndex

    with VideoIndex(str(idx), model=test_model, gpu=False) as vi:
        assert len({s.path for s in vi.search(np.ones(16, np.float32), k=10)}) == 2

    monkeypatch.setattr(build_mod, "embed_chunks", real)
    report = build_index([str(root)], str(idx), model=test_model, workers=0, progress=False, window_policy="stride")
    assert report.added == 0 and report.total_files == 5
    a, b = snapshot(idx), snapshot(full)
    assert set(a) == set(b)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=1e-5)


def refuse_listing(monkeypatch, name: str) -> None:
    """Listing a folder called ``name`` fails as for a user without permission (``os.walk`` lists with
    ``os.scandir``)."""
    real = os.scandir

    def refused(path="."):
        if str(path).endswith(name):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", refused)


def test_a_folder_that_cannot_be_listed_keeps_its_videos(tmp_path, test_model, monkeypatch):
    """A sub-folder the scan cannot list (its permissions changed; a share's I/O error) is not a folder whose videos
    were deleted: they stay in the index as they were, and the update says which folder it could not read and why.
    (Before, they were dropped, and embedded again once the folder could be read. Tests run as root: the refusal is
    patched into ``os.scandir``, which ``os.walk`` lists with; `vtr index update` as another user showed the same.)"""
    root = tmp_path / "videos"
    make_video(root / "trip" / "a.mp4", 5, seed=1)
    make_video(root / "trip" / "b.mp4", 5, seed=2)
    make_video(root / "home" / "c.mp4", 5, seed=3)
    idx = tmp_path / "idx"
    build_index([str(root)], str(idx), model=test_model, workers=0, progress=False)
    refuse_listing(monkeypatch, "trip")
    report = build_index(None, str(idx), model=test_model, workers=0, progress=False)
    assert report.unreadable == [(str(root / "trip"), "Permission denied")]
    assert report.deleted == 0 and report.total_files == 3
    assert f"could not be read, so their videos were kept as they were: {root / 'trip'} (Permission denied)" in (
        report.summary())
    monkeypatch.undo()
    report = build_index(None, str(idx), model=test_model, workers=0, progress=False)
    assert report.unreadable == [] and report.unchanged == 3 and report.total_files == 3


def test_a_drive_mounted_inside_a_scanned_folder_keeps_its_videos_while_unplugged(tmp_path, test_model, monkeypatch):
    """An index of /media/me (every USB drive the desktop mounts there) or of ~/Videos with a NAS mounted inside: an
    unplugged drive leaves an empty folder, or none (udisks removes it). Its videos are away, not deleted: kept and
    said, found again unchanged when it is back, dropped by --forget-missing. (Tests cannot mount: the mount is
    ``os.path.ismount``'s answer; a tmpfs mounted and unmounted by hand showed the same.)"""
    root = tmp_path / "media"
    make_video(root / "USB1" / "a.mp4", 5, seed=1)
    make_video(root / "USB1" / "b.mp4", 5, seed=2)
    make_video(root / "home" / "c.mp4", 5, seed=3)
    drive = root / "USB1"
    mounted = {str(drive)}
    monkeypatch.setattr(os.path, "ismount", lambda path: os.path.abspath(path) in mounted)
    idx = tmp_path / "idx"

    def update(**kwargs):
        return build_index(None, str(idx), model=test_model, workers=0, progress=False, **kwargs)

    build_index([str(root)], str(idx), model=test_model, workers=0, progress=False)
    mounted.clear()
    drive.rename(tmp_path / "unplugged")  # udisks removes the folder it mounted on
    report = update()
    assert report.deleted == 0 and report.total_files == 3 and report.missing_roots == [str(drive)]
    (tmp_path / "unplugged").rename(drive)
    mounted.add(str(drive))
    report = update()
    assert report.unchanged == 3 and report.embedded_windows == 0 and report.missing_roots == []
    mounted.clear()
    for f in drive.iterdir():  # unmounted: the empty folder it was mounted on
        f.rename(tmp_path / f.name)
    assert update().total_files == 3
    report = update(forget_missing=True)
    assert report.deleted == 2 and report.total_files == 1
    report = update()  # forgotten with its videos: nothing more is said of it
    assert report.missing_roots == [] and report.total_files == 1


def _hash_fails(monkeypatch, name: str, error: OSError) -> None:
    """The build's first read of the file called ``name`` (its content hash) raises ``error``."""
    real_hash = build_mod.quick_hash

    def failing(path):
        if path.endswith(name):
            raise error
        return real_hash(path)

    monkeypatch.setattr(build_mod, "quick_hash", failing)


def test_files_gone_while_being_read_are_not_failed_and_are_indexed_once_back(tmp_path, test_model, monkeypatch):
    """A share or drive that drops mid-build: the files not yet read are not recorded as damaged (an update would
    have left them failed, unchanged, when the share came back); the next update with the folder back indexes
    them, giving the index a clean build gives."""
    root = tmp_path / "share" / "videos"
    for i in range(4):
        make_video(root / f"v{i}.mp4", 5 + 3 * i, seed=40 + i)
    clean = tmp_path / "clean"
    build_index([str(root)], str(clean), model=test_model, workers=0, progress=False, window_policy="stride")
    real = build_mod.embed_chunks
    away = tmp_path / "away"

    def dropping(*args, **kwargs):
        for n, item in enumerate(real(*args, **kwargs)):
            yield item
            if n == 0:
                (tmp_path / "share").rename(away)  # unplugged after the first file

    monkeypatch.setattr(build_mod, "embed_chunks", dropping)
    idx = tmp_path / "idx"
    report = build_index([str(root)], str(idx), model=test_model, workers=0, progress=False, window_policy="stride")
    monkeypatch.undo()
    gone = len(report.vanished)  # the files not decoded yet when it went (decoding reads ahead)
    assert report.failed == 0 and report.failures == [] and gone >= 1
    assert f"{gone} gone while being read" in report.summary()
    st = index_status(str(idx))
    assert st["files"] == 4 - gone and st["failed"] == [] and st["pending"] == []
    away.rename(tmp_path / "share")
    report = build_index(None, str(idx), model=test_model, workers=0, progress=False)
    assert report.added == gone and report.total_files == 4 and report.vanished == []
    a, b = snapshot(idx), snapshot(clean)
    assert set(a) == set(b)
    # a file gone between the scan and its hash is left as if unseen
    make_video(root / "late.mp4", 5, seed=50)
    _hash_fails(monkeypatch, "late.mp4", FileNotFoundError(2, "No such file or directory"))
    report = build_index(None, str(idx), model=test_model, workers=0, progress=False)
    assert report.vanished == [str(root / "late.mp4")] and report.failed == 0
    assert index_status(str(idx))["files"] == 4


def test_a_file_an_older_build_failed_as_not_found_is_tried_again_when_it_is_there(tmp_path, test_model):
    root = tmp_path / "videos"
    make_video(root / "a.mp4", 5, seed=1)
    make_video(root / "b.mp4", 5, seed=2)
    idx = tmp_path / "idx"
    build_index([str(root)], str(idx), model=test_model, workers=0, progress=False)
    cat = Catalog(idx / "catalog.sqlite")  # as a build before gone files were told apart left b.mp4
    with cat.transaction():
        cat.mark_failed(cat.file_by_path(str(root / "b.mp4")).id, "file not found")
        cat.mark_failed(cat.file_by_path(str(root / "a.mp4")).id, "moov atom not found")  # damaged: stays
    cat.close()
    build_index(None, str(idx), model=test_model, workers=0, progress=False)
    st = index_status(str(idx))
    assert st["files"] == 1 and st["failed"] == [(str(root / "a.mp4"), "moov atom not found")]


def test_a_file_that_could_not_be_read_is_tried_again_once_it_can_be(tmp_path, test_model, monkeypatch):
    """Copied in by another user with mode 600: "cannot read: Permission denied". A chmod mends it without changing
    the file's modification time, so an update tries it again when it opens (tests run as root: the refusal is
    patched in); while it still does not, the update leaves it failed as before, without saying so again."""
    root = tmp_path / "videos"
    make_video(root / "a.mp4", 5, seed=1)
    make_video(root / "b.mp4", 5, seed=2)
    idx = tmp_path / "idx"
    _hash_fails(monkeypatch, "b.mp4", PermissionError(13, "Permission denied"))
    report = build_index([str(root)], str(idx), model=test_model, workers=0, progress=False)
    assert report.failures == [(str(root / "b.mp4"), "cannot read: Permission denied")]
    monkeypatch.setattr(build_mod, "_readable", lambda path: False)  # still refused: as before, unsaid
    report = build_index(None, str(idx), model=test_model, workers=0, progress=False)
    assert report.failures == [] and report.unchanged == 2 and not report.changed_index
    monkeypatch.undo()
    report = build_index(None, str(idx), model=test_model, workers=0, progress=False)
    assert report.failures == [] and report.total_files == 2 and index_status(str(idx))["failed"] == []


@pytest.mark.parametrize("full", ["thumbnail", "catalog"])
def test_a_disk_that_fills_up_stops_the_build_plainly_and_an_update_goes_on(tmp_path, test_model, monkeypatch,
                                                                             full):
    """The third file's write finds the disk full (a thumbnail: ENOSPC; the catalog: sqlite's "database or disk
    is full"). The build stops with a VtrError saying so, not a traceback; the two files committed before are kept and
    searched; an update once there is room gives the index a clean build gives."""
    import errno
    import sqlite3

    from vtr.errors import VtrError

    root = tmp_path / "videos"
    for i in range(4):
        make_video(root / f"v{i}.mp4", 5 + 3 * i, seed=30 + i)
    clean = tmp_path / "clean"
    build_index([str(root)], str(clean), model=test_model, workers=0, progress=False, window_policy="stride")
    finished = []
    if full == "thumbnail":
        real, target = build_mod.write_thumbnail, "write_thumbnail"

        def filling(index_dir, window_id, jpeg):
            if len(finished) == 2:
                raise OSError(errno.ENOSPC, "No space left on device", str(thumbnail_path(index_dir, window_id)))
            return real(index_dir, window_id, jpeg)
    else:
        real, target = Catalog.add_chunk, "add_chunk"

        def filling(self, *args, **kwargs):
            if len(finished) == 2:
                raise sqlite3.OperationalError("database or disk is full")
            return real(self, *args, **kwargs)
    real_commit = Catalog.finish_chunks
    monkeypatch.setattr(Catalog, "finish_chunks", lambda self, key: finished.append(key) or real_commit(self, key))
    monkeypatch.setattr(Catalog if full == "catalog" else build_mod, target, filling)
    idx = tmp_path / "idx"
    import re

    # the index's disk, not the thumbnail's temporary file
    with pytest.raises(VtrError, match=re.escape(f"no space left on the disk of {idx}: the windows committed before "
                                                 "are kept")):
        build_index([str(root)], str(idx), model=test_model, workers=0, progress=False, window_policy="stride")
    monkeypatch.undo()
    st = index_status(str(idx))
    assert st["files"] == 2 and len(st["pending"]) == 2
    from index.search import VideoIndex

    with VideoIndex(str(idx), model=test_model, gpu=False) as vi:
        assert len({s.path for s in vi.search(np.ones(16, np.float32), k=10)}) == 2
    report = build_index(None, str(idx), model=test_model, workers=0, progress=False)
    assert report.total_files == 4 and report.failed == 0
    a, b = snapshot(idx), snapshot(clean)
    assert set(a) == set(b)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=1e-5)
    assert len(list((idx / "thumbnails").rglob("*.jpg"))) == len(list((clean / "thumbnails").rglob("*.jpg")))


def test_a_disk_full_before_the_first_commit_says_to_run_the_build_again(tmp_path, test_model, monkeypatch):
    """A disk full while the plan is written (the folders are recorded with it): nothing was committed, so the error
    says to run the same command again; `vtr index update`, which the error offered before, found no folders."""
    import re
    import sqlite3

    from index.catalog import Catalog
    from vtr.errors import VtrError

    root = tmp_path / "videos"
    make_video(root / "a.mp4", 5, seed=3)

    def full(self, *args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Catalog, "upsert_pending", full)
    idx = tmp_path / "idx"
    with pytest.raises(VtrError, match=re.escape(f"no space left on the disk of {idx}: nothing of the build was "
                                                 "committed; free some space, then run the same command again")):
        build_index([str(root)], str(idx), model=test_model, workers=0, progress=False)
    monkeypatch.undo()
    with pytest.raises(VtrError, match="has no recorded folders"):  # what the old advice led to
        build_index(None, str(idx), model=test_model, workers=0, progress=False)
    report = build_index([str(root)], str(idx), model=test_model, workers=0, progress=False)  # the advice now
    assert report.total_files == 1 and report.failed == 0


def test_manifest_mismatch_stops_unless_reembed(collection, tmp_path, test_model):
    from vtr.errors import VtrError

    idx = tmp_path / "idx"
    build_index([str(collection)], str(idx), model=test_model, workers=0, progress=False, window_policy="stride")
    with pytest.raises(VtrError, match="window_s.*--reembed"):
        build_index([str(collection)], str(idx), model=test_model, window_s=4.0, workers=0, progress=False,
                    window_policy="stride")
    report = build_index([str(collection)], str(idx), model=test_model, window_s=4.0, stride_s=4.0, reembed=True,
                         workers=0, progress=False)
    assert report.embedded_windows == report.total_windows == 1 + 4 + 3
    assert index_status(str(idx))["manifest"]["window_s"] == 4.0


def test_precision_is_recorded_and_does_not_force_a_reembed(tmp_path, test_model):
    root = tmp_path / "videos"
    make_video(root / "a.mp4", 9, seed=4)
    idx32, idx16 = tmp_path / "idx32", tmp_path / "idx16"
    build_index([str(root)], str(idx32), model=test_model, workers=0, progress=False, window_policy="stride",
                precision="fp32")
    build_index([str(root)], str(idx16), model=test_model, workers=0, progress=False, window_policy="stride",
                precision="bf16")
    assert index_status(str(idx32))["manifest"]["precision"] == "fp32"
    assert index_status(str(idx16))["manifest"]["precision"] == "bf16"
    v32, v16 = snapshot(idx32), snapshot(idx16)
    assert v32.keys() == v16.keys() and len(v32) == 2
    for key in v32:
        assert not np.array_equal(v32[key], v16[key])
        cos = float(v32[key] @ v16[key] / np.linalg.norm(v32[key]) / np.linalg.norm(v16[key]))
        assert cos >= 0.999, (key, cos)
    # the other precision updates the same index without --reembed (nothing to embed: no file changed)
    again = build_index([str(root)], str(idx32), model=test_model, workers=0, progress=False, window_policy="stride",
                        precision="bf16")
    assert again.embedded_windows == 0 and index_status(str(idx32))["manifest"]["precision"] == "bf16"


def test_dvd_broadcast_and_old_windows_containers_are_indexed(tmp_path, test_model):
    """The scanner lists the camcorder, DVD, broadcast and old Windows containers FFmpeg reads, and they index."""
    root = tmp_path / "videos"
    root.mkdir()
    frames = np.zeros((20, 96, 128, 3), np.uint8)  # MXF refuses some small sizes (96x64)
    frames[:, :, :64] = 200
    for name, codec in [("dvd.vob", "mpeg2video"), ("broadcast.mxf", "mpeg2video"), ("old.asf", "msmpeg4"),
                        ("old_phone.3g2", "h263")]:
        write_video(root / name, frames, fps=25, codec=codec)  # MXF takes broadcast rates only; H.263 128x96
    for name in ("MOV001.TOD", "tape.m2t"):  # JVC's HD camcorders; HDV captured from tape: MPEG-2 in MPEG-TS
        write_video(root / "tmp.ts", frames, fps=25, codec="mpeg2video").rename(root / name)
    (root / "song.m4a").write_bytes(b"not listed")  # audio-first extensions are not scanned
    report = build_index([str(root)], str(tmp_path / "idx"), model=test_model, workers=0, progress=False)
    assert (report.total_files, report.failed) == (6, 0), report.failures
    assert {k[0] for k in snapshot(tmp_path / "idx")} == {"dvd.vob", "broadcast.mxf", "old.asf", "old_phone.3g2",
                                                          "MOV001.TOD", "tape.m2t"}


def test_tv_recordings_pvr_streams_and_old_containers_are_indexed(tmp_path, test_model):
    """Containers FFmpeg reads under extensions the scan left out: Windows Media Center's TV recordings (.wtv, and
    .dvr-ms, an ASF), HD PVRs' MPEG-TS (.trp, .tp), VP9 in IVF (.ivf: libvpx's output, a WebRTC call recorded),
    MPEG-1 video (.m1v), old QuickTime (.qt) and OGM video (.ogm): each indexed to its end."""
    from tests.videos import encode_all, indexed_frames

    root = tmp_path / "videos"
    root.mkdir()
    frames = indexed_frames(50, 64, 96)  # 2 s at 25 fps (MPEG-1 takes the broadcast and film rates only)
    kinds = {"show.wtv": ("wtv", "mpeg2video"), "film.dvr-ms": ("asf", "msmpeg4"), "match.trp": ("mpegts", "libx264"),
             "news.tp": ("mpegts", "mpeg2video"), "call.ivf": ("ivf", "libvpx-vp9"), "clip.m1v": ("mpeg1video",
             "mpeg1video"), "trailer.qt": ("mov", "libx264"), "episode.ogm": ("ogg", "libvpx")}
    for name, (fmt, codec) in kinds.items():
        with av.open(str(root / name), "w", format=fmt) as c:
            stream = c.add_stream(codec, rate=25)
            stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
            stream.bit_rate = 4_000_000
            encode_all(c, stream, frames)
    report = build_index([str(root)], str(tmp_path / "idx"), model=test_model, workers=0, progress=False)
    assert (report.total_files, report.failed) == (len(kinds), 0), report.failures
    ends = {}
    for f, w in snapshot_windows(tmp_path / "idx"):
        ends[os.path.basename(f.path)] = max(ends.get(os.path.basename(f.path), 0.0), w.end)
    assert ends == {name: pytest.approx(2.0) for name in kinds}


def test_raw_streams_are_indexed_and_cut(tmp_path, test_model):
    """A folder of a Raspberry Pi camera's .h264 and .mjpeg and a recorder's .265 and .264 (raw streams, without a
    container) is indexed, its windows at the players' times, and a moment is cut from the frame at its start.
    Before, their extensions were not scanned, and the reader refused the H.264 and HEVC ones."""
    import av

    from tests.data.test_raw_streams import X264, X265_OPEN
    from tests.videos import frame_index_of, indexed_frames
    from vtr.data.cut import cut_clip

    root = tmp_path / "videos"
    root.mkdir()
    frames = indexed_frames(60, 64, 96)
    write_video(root / "garden.h264", frames, fps=10, options=X264)
    write_video(root / "door.265", frames, fps=10, codec="libx265", options=X265_OPEN)
    write_video(root / "dvr.264", frames[:40], fps=10, options=X264)
    write_video(root / "still_cam.mjpeg", frames[:50], fps=25, codec="mjpeg", pix_fmt="yuvj420p")  # 25 fps: no rate
    (root / "notes.h264").write_text("not a stream\n" * 50)
    report = build_index([str(root)], str(tmp_path / "idx"), model=test_model, workers=0, progress=False)
    assert (report.total_files, report.failed) == (4, 1), report.failures  # (total: those indexed)
    assert "notes.h264" in str(report.failures)
    ends = {}
    for f, w in snapshot_windows(tmp_path / "idx"):
        ends[os.path.basename(f.path)] = max(ends.get(os.path.basename(f.path), 0.0), w.end)
    assert ends == {"garden.h264": pytest.approx(6.0), "door.265": pytest.approx(6.0), "dvr.264": pytest.approx(4.0),
                    "still_cam.mjpeg": pytest.approx(2.0)}
    out = tmp_path / "door 3.0-4.5.mp4"
    cut_clip(str(root / "door.265"), 3.0, 4.5, out)
    with av.open(str(out)) as c:
        got = [frame_index_of(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
    assert got == list(range(30, 45))


def test_a_dahua_recorder_s_exports_are_indexed_dated_and_cut_with_their_sound(tmp_path, test_model):
    """Dahua's NVRs and DVRs export ``.dav`` files (DHAV chunks of H.264, the camera's G.711 sound beside it), which
    FFmpeg reads; vtr did not scan the extension. One renamed, one as the recorder names it (with the 1024-byte file
    header some exports begin with): both indexed to their end, dated by the recorder's clock, and a moment cut from
    the frame at its start, with its sound."""
    import av

    from tests.videos import frame_index_of, indexed_frames, write_dav
    from vtr.data.cut import cut_clip

    root = tmp_path / "cctv"
    root.mkdir()
    write_dav(root / "front door.dav", indexed_frames(75, 64, 96), sound=True)
    write_dav(root / "CH01_20240517140358_20240517140401.dav", indexed_frames(50, 64, 96), header=True)
    report = build_index([str(root)], str(tmp_path / "idx"), model=test_model, workers=0, progress=False)
    assert (report.total_files, report.failed) == (2, 0), report.failures
    ends = {}
    for f, w in snapshot_windows(tmp_path / "idx"):
        ends[os.path.basename(f.path)] = max(ends.get(os.path.basename(f.path), 0.0), w.end)
    assert ends == {"front door.dav": pytest.approx(3.0), "CH01_20240517140358_20240517140401.dav": pytest.approx(2.0)}
    cat = Catalog(tmp_path / "idx" / "catalog.sqlite")
    try:
        dates = cat.recorded_of(f.id for f in cat.files("ok"))
    finally:
        cat.close()
    from datetime import datetime

    assert list(dates.values()) == [(datetime(2024, 5, 17, 14, 3, 58).timestamp(), "metadata")] * 2
    for start, stop in ((1.0, 2.0), (0.0, 2.0)):  # from its start too (the app's preview of its first moment),
        # which lost its first second: a seek to the start of a file just opened landed after what FFmpeg had read
        out = tmp_path / f"door {start}.mp4"
        cut_clip(str(root / "front door.dav"), start, stop, out)
        with av.open(str(out)) as c:
            got = [frame_index_of(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
        with av.open(str(out)) as c:
            sound = sum(f.samples for f in c.decode(audio=0)) / c.streams.audio[0].sample_rate
        assert got == list(range(int(start * 25), int(stop * 25)))
        assert sound == pytest.approx(stop - start, abs=0.05)


@pytest.mark.parametrize("rotation", [0, 90])
def test_thumbnails_are_shown_as_players_show_non_square_pixels(tmp_path, test_model, rotation):
    """HDV camcorders store 1440x1080 and mark each pixel 4/3 as wide (shown 16:9); the thumbnails were 4:3, every
    round thing an upright ellipse. A display rotation turns the wide pixel into a tall one."""
    import io
    from fractions import Fraction

    import av

    from index.search import VideoIndex
    from vtr.data.video import open_video

    root = tmp_path / "videos"
    root.mkdir()
    write_video(root / "hdv.mp4", np.full((20, 96, 128, 3), 90, np.uint8), fps=10, rotation=rotation,
                sample_aspect=Fraction(4, 3))
    with open_video(str(root / "hdv.mp4"), backend="pyav") as reader:
        assert reader.pixel_aspect == pytest.approx(4 / 3 if rotation == 0 else 3 / 4)
        assert (reader.width, reader.height) == ((128, 96) if rotation == 0 else (96, 128))  # stored pixels
    build_index([str(root)], str(tmp_path / "idx"), model=test_model, workers=0, progress=False)
    ids = [w.id for _, w in snapshot_windows(tmp_path / "idx")]
    with VideoIndex(str(tmp_path / "idx"), gpu=False) as vi:  # and one cut later (an index without thumbnails)
        later = vi.thumbnail(str(root / "hdv.mp4"), 1.0)
    for jpeg in (thumbnail_path(tmp_path / "idx", ids[0]).read_bytes(), later):
        with av.open(io.BytesIO(jpeg)) as c:
            thumb = c.streams.video[0].codec_context
            shown = thumb.width / thumb.height
        assert shown == pytest.approx(16 / 9 if rotation == 0 else 9 / 16, rel=0.03)


def test_thumbnails_show_the_colours_players_show(tmp_path, test_model):
    """An HD video that says no colour matrix (a screen recording, a web download, gradio's own a.mp4) is shown by
    players as BT.709, while FFmpeg converts it as BT.601, as the model's frames keep it: the thumbnails showed a red
    200,30,30 as 185,11,31 beside a preview that shows it right (Chromium, last session). Tagged or SD videos agreed
    already, and are unchanged."""
    import io

    import av

    from index.search import VideoIndex

    root = tmp_path / "videos"
    root.mkdir()
    red = (200, 30, 30)
    cases = {"hd_untagged.mp4": (1280, 720, None), "hd_tagged.mp4": (1280, 720, 1), "sd_untagged.mp4": (640, 480, None)}
    for name, (width, height, tag) in cases.items():
        matrix = "ITU709" if width >= 1280 else "ITU601"  # each painted in the matrix players take it to be in
        with av.open(str(root / name), "w") as c:
            stream = c.add_stream("libx264", rate=10)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"crf": "5", "preset": "ultrafast"}
            if tag:
                cc = stream.codec_context
                cc.colorspace, cc.color_primaries, cc.color_trc = tag, tag, tag
            picture = np.empty((height, width, 3), np.uint8)
            picture[:] = red
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p",
                                                                                  dst_colorspace=matrix)
            frame.colorspace = tag or 2  # said, or not
            for _ in range(20):
                for packet in stream.encode(frame):
                    c.mux(packet)
            for packet in stream.encode():
                c.mux(packet)
    build_index([str(root)], str(tmp_path / "idx"), model=test_model, workers=0, progress=False)
    windows = {os.path.basename(f.path): w.id for f, w in snapshot_windows(tmp_path / "idx")}
    with VideoIndex(str(tmp_path / "idx"), gpu=False) as vi:  # and one cut later (an index without thumbnails)
        later = {name: vi.thumbnail(str(root / name), 1.0) for name in cases}
    for name in cases:
        for jpeg in (thumbnail_path(tmp_path / "idx", windows[name]).read_bytes(), later[name]):
            with av.open(io.BytesIO(jpeg)) as c:
                shown = next(c.decode(video=0)).to_ndarray(format="rgb24").reshape(-1, 3).mean(axis=0)
            assert np.abs(shown - red).max() <= 4, (name, shown)


def test_the_formats_people_have_index_whole(tmp_path, test_model):
    """Long-GOP footage in the containers and codecs of phones, cameras, browsers and old PCs, each 16 s (400
    frames, past the readers' seek threshold): every file indexes whole, with the duration the player shows, its
    windows reach its end, and each window's thumbnail is the frame it should be (the frames carry their number as
    bars). TS seeks land on any packet, MP4 with B-frames seeks by decoding time, AVI numbers B-frames from 1 (and
    decord misreads it): each once cost files their frames (bench/README.md, fourteenth round)."""
    import io

    import av

    from index.policies import grid_frames, nearest_on_grid
    from index.windows import Window, window_frame_indices
    from vtr.data.video import Clock

    root = tmp_path / "videos"
    root.mkdir()
    fps = 25
    frames = textured_frames(16, seed=7, fps=fps, height=96, width=128)
    length = len(frames) / fps  # the video's own length in seconds (400 frames), what its catalog row must say
    frames[:, :16] = 0
    for i in range(len(frames)):  # frame i's number in 9 bars of 14 pixels across the top
        for b in range(9):
            if i >> b & 1:
                frames[i, :16, b * 14:(b + 1) * 14] = 255

    def number(jpeg: bytes) -> int:
        with av.open(io.BytesIO(jpeg)) as c:
            rgb = next(c.decode(video=0)).to_ndarray(format="rgb24")
        sy, sx = rgb.shape[0] / 96, rgb.shape[1] / 128  # thumbnails are scaled
        return sum(1 << b for b in range(9)
                   if rgb[int(3 * sy):int(13 * sy), int((b * 14 + 4) * sx):int(((b + 1) * 14 - 4) * sx)].mean() > 128)
    bf = {"preset": "veryfast", "bf": "3", "g": "50"}
    formats = [("camcorder.mts", "libx264", bf, "yuv420p"),
               ("phone.mov", "libx265", {"preset": "veryfast", "x265-params": "keyint=50:log-level=error"},
                "yuv420p"),
               ("browser.webm", "libvpx-vp9", {"g": "50", "deadline": "realtime", "cpu-used": "8"}, "yuv420p"),
               ("screen.mkv", "libsvtav1", {"g": "50", "preset": "12"}, "yuv420p"),
               ("divx.avi", "mpeg4", {"bf": "2", "g": "50"}, "yuv420p"), ("webcam.avi", "mjpeg", {}, "yuvj420p"),
               ("edit.mov", "prores_ks", {}, "yuv422p10le"), ("camera.mp4", "libx264", bf, "yuv420p")]
    required = {"camcorder.mts", "divx.avi", "camera.mp4"}
    written = []
    for name, codec, options, pix_fmt in formats:
        if codec not in av.codecs_available:
            continue  # an FFmpeg built without this encoder (the decoders are in every build)
        try:
            write_video(root / name, frames, fps=fps, codec=codec, options=options, pix_fmt=pix_fmt)
        except av.error.FFmpegError:
            # libvpx-vp9 refuses to open once decord (its own FFmpeg libraries) is loaded in this process
            if name in required:
                raise
            (root / name).unlink(missing_ok=True)
            continue
        written.append(name)
    assert required <= set(written)
    idx = tmp_path / "idx"
    report = build_index([str(root)], str(idx), model=test_model, workers=1, progress=False)
    assert (report.total_files, report.failed, report.partial) == (len(written), 0, 0), \
        report.failures + report.partials
    n = test_model.preprocess.num_frames
    cat = Catalog(idx / "catalog.sqlite")
    try:
        for f in cat.files("ok"):
            windows = cat.windows_of(f.id)
            assert f.duration == pytest.approx(length, abs=0.05), (f.path, f.duration)  # media time, not a timing
            assert windows[0].start == 0.0 and windows[-1].end == pytest.approx(f.duration), f.path
            clock = Clock(float(fps), len(frames))
            grid = grid_frames(clock, 0.0, length)  # shot windows take their frames from one pass's grid
            for w in windows:
                window = Window(w.start, w.end)
                sampled = nearest_on_grid(window_frame_indices(window, clock, n), window, grid, clock)  # middle
                middle = sampled[len(sampled) // 2]
                assert number(thumbnail_path(idx, w.id).read_bytes()) == middle, (f.path, w)
    finally:
        cat.close()


def test_animated_gifs_are_indexed_as_videos_and_still_ones_left_out(tmp_path, test_model):
    """A GIF, APNG, WebP or AVIF of several frames (a phone's animation, a clip or a sticker saved from a chat, the
    web's GIF replacements) is a short video: indexed with its windows over its frames' times, an APNG also under
    the still's name (``.png``, as most are). One of a single frame (a web page's spacer, a photo, a screenshot) is a
    picture, left out as photos are, until it holds an animation. Before, no `.gif` was scanned: an animation was
    never found; nor was an animated WebP, which FFmpeg does not decode, or an APNG named `.png`."""
    from tests.videos import frame_index_of, indexed_frames, write_animated_webp, write_avif, write_gif, write_photo

    root = tmp_path / "videos"
    (root / "chat").mkdir(parents=True)
    (root / "site").mkdir()
    frames = indexed_frames(30, 96, 128)
    write_gif(root / "chat" / "dance.GIF", frames)  # 3 s at 10 frames a second
    apng = write_video(root / "chat" / "sticker.apng", frames[:20], fps=10, codec="apng", pix_fmt="rgb24")
    (root / "chat" / "line_sticker.png").write_bytes(apng.read_bytes())
    write_avif(root / "chat" / "loop.avif", frames[:20])
    write_animated_webp(root / "chat" / "wave.webp", frames[:20], lossless=True)
    write_gif(root / "site" / "spacer.gif", frames[:1])
    write_avif(root / "site" / "photo.avif", frames[:1])
    write_video(root / "site" / "banner.webp", frames[:1], fps=1, codec="libwebp")
    write_photo(root / "site" / "screenshot.png", frames[0])
    idx = tmp_path / "idx"
    report = build_index([str(root)], str(idx), model=test_model, workers=0, progress=False)
    assert (report.total_files, report.added, report.failed) == (5, 5, 0), report.failures
    n = test_model.preprocess.num_frames
    spans = {}
    for f, w in snapshot_windows(idx):
        length = {"dance.GIF": 3.0, "loop.avif": 2.0}.get(os.path.basename(f.path), 2.0)
        assert f.duration == pytest.approx(length)  # media time: 0.1 s a frame
        spans.setdefault(os.path.basename(f.path), []).append((w.start, w.end))
        with av.open(io.BytesIO(thumbnail_path(idx, w.id).read_bytes())) as c:
            shown = frame_index_of(next(c.decode(video=0)).to_ndarray(format="rgb24"))
        middle = window_frame_indices(Window(w.start, w.end), Clock(10.0, round(length * 10)), n)[n // 2]
        assert abs(shown - middle) <= 1, (f.path, w)  # the frame at the window's middle, not the first one
    assert {name: (min(s), max(e)) for name, ws in spans.items() for s, e in [zip(*ws)]} == \
        {"dance.GIF": (0.0, pytest.approx(3.0)), "sticker.apng": (0.0, pytest.approx(2.0)),
         "loop.avif": (0.0, pytest.approx(2.0)), "wave.webp": (0.0, pytest.approx(2.0)),
         "line_sticker.png": (0.0, pytest.approx(2.0))}  # windows over it all
    write_gif(root / "site" / "spacer.gif", frames[:10])  # the same name, now an animation
    later = build_index(None, str(idx), model=test_model, workers=0, progress=False)
    assert (later.added, later.unchanged) == (1, 5)


def test_motion_photos_are_indexed_as_their_videos_and_other_photos_left_out(tmp_path, test_model, capsys):
    """A phone's camera folder: a Pixel's motion photo (with an Ultra HDR gain map), a Galaxy's JPEG and HEIC ones,
    and photos without a video. Each motion photo's video is indexed, its windows over its frames, its date from
    the video's tags; the other photos are left out, not failed. Before, no photo was scanned: the moments a phone
    keeps around each shot were never found."""
    from datetime import datetime, timezone

    from tests.videos import frame_index_of, indexed_frames, write_heif, write_motion_photo, write_photo

    camera = tmp_path / "DCIM" / "Camera"
    camera.mkdir(parents=True)
    frames = indexed_frames(20, 96, 128)  # 2 s at 10 frames a second
    photo = frames[10]
    write_motion_photo(camera / "PXL_20240501_101112345.MP.jpg", photo, frames, "google-gainmap",
                       tags={"creation_time": "2024-05-01T08:11:12Z"})
    write_motion_photo(camera / "20240502_090000.jpg", photo, frames, "samsung")
    write_motion_photo(camera / "20240503_090000.heic", photo, frames, "heic-mpvd")
    write_photo(camera / "IMG_20240504_090000.jpg", photo)
    write_heif(camera / "IMG_0001.HEIC", photo)
    idx = tmp_path / "idx"
    report = build_index([str(tmp_path / "DCIM")], str(idx), model=test_model, workers=0, progress=False)
    assert (report.total_files, report.added, report.failed) == (3, 3, 0), report.failures
    n = test_model.preprocess.num_frames
    ids = {}
    for f, w in snapshot_windows(idx):
        ids[os.path.basename(f.path)] = f.id
        assert f.duration == pytest.approx(2.0)  # media time: 0.1 s a frame
        with av.open(io.BytesIO(thumbnail_path(idx, w.id).read_bytes())) as c:
            shown = frame_index_of(next(c.decode(video=0)).to_ndarray(format="rgb24"))
        middle = window_frame_indices(Window(w.start, w.end), Clock(10.0, 20), n)[n // 2]
        assert abs(shown - middle) <= 1, (f.path, w)  # a frame of the video, not the photo
    assert sorted(ids) == ["20240502_090000.jpg", "20240503_090000.heic", "PXL_20240501_101112345.MP.jpg"]
    cat = Catalog(idx / "catalog.sqlite")
    try:
        when, source = cat.recorded_of([ids["PXL_20240501_101112345.MP.jpg"]])[ids["PXL_20240501_101112345.MP.jpg"]]
    finally:
        cat.close()
    assert (datetime.fromtimestamp(when, timezone.utc), source) == (datetime(2024, 5, 1, 8, 11, 12,
                                                                              tzinfo=timezone.utc), "metadata")
    again = build_index(None, str(idx), model=test_model, workers=0, progress=False)
    assert (again.added, again.unchanged, again.failed) == (0, 3, 0)
    # the status says what became of the photos (`vtr index status`, the app's Index tab)
    from app.ui import _status_markdown, literal
    from index.commands import status_command

    st = index_status(str(idx))
    assert st["pictures"] == {"read": 5, "with_video": 3}
    said = "5 read: 3 hold a video (motion photos, animations), 2 left out"
    status_command(index=str(idx))
    assert f"pictures  {said}\n" in capsys.readouterr().out
    assert f"**Pictures** {literal(said)}" in _status_markdown(st, idx)


def test_an_update_reads_the_photos_it_left_out_once(tmp_path, test_model, monkeypatch):
    """A camera folder of photos: the first scan reads each one's XMP and tail, indexes the motion photo and leaves
    the others out; the index keeps what it read, so the next update (a new process) stats them and reads none,
    until one changes. Pictures kept by an older scan (``pictures_version``) are read again: a newer vtr may find a
    video in them."""
    import index.scan as scan_mod
    import vtr.data.motion_photo as motion_photo
    from tests.videos import indexed_frames, write_gif, write_motion_photo, write_photo

    camera = tmp_path / "Camera"
    camera.mkdir()
    frames = indexed_frames(20, 64, 96)
    for i in range(3):
        write_photo(camera / f"IMG_{i}.jpg", frames[i])
    write_gif(camera / "spacer.gif", frames[:1])
    write_video(camera / "clip.mp4", frames, fps=10)
    write_motion_photo(camera / "PXL_1.MP.jpg", frames[5], frames)
    read = []
    real_span, real_still = motion_photo.video_span, scan_mod._still.__wrapped__
    monkeypatch.setattr(motion_photo, "video_span", lambda f, size: read.append(f.name) or real_span(f, size))
    monkeypatch.setattr(scan_mod, "_still", lambda *a: read.append(a[0]) or real_still(*a))

    def update(roots=None):
        motion_photo._embedded.cache_clear()  # as a new process
        read.clear()
        return build_index(roots, str(tmp_path / "idx"), model=test_model, workers=0, progress=False)

    first = update([str(camera)])
    assert (first.added, len(read)) == (2, 5)  # the video and the motion photo; each picture read once
    again = update()
    assert (again.unchanged, read) == (2, [])
    write_motion_photo(camera / "IMG_1.jpg", frames[1], frames)  # edited: now a motion photo
    changed = update()
    assert (changed.added, changed.unchanged, read) == (1, 2, [str(camera / "IMG_1.jpg")])
    cat = Catalog(tmp_path / "idx" / "catalog.sqlite")
    with cat.transaction():
        cat.set_meta("pictures_version", 0)  # kept by an older scan
    cat.close()
    (camera / "IMG_2.jpg").unlink()
    assert (update().unchanged, len(read)) == (3, 4)
    idx = str(tmp_path / "idx")
    assert index_status(idx)["pictures"] == {"read": 4, "with_video": 2}  # the deleted one forgotten at once
    assert update().unchanged == 3 and read == []
    (camera / "IMG_0.jpg").unlink()
    assert update().unchanged == 3 and read == []
    cat = Catalog(Path(idx) / "catalog.sqlite")
    try:
        kept = cat.pictures()
    finally:
        cat.close()
    assert {os.path.basename(p): video for p, (_, _, video) in kept.items()} == {
        "IMG_1.jpg": True, "PXL_1.MP.jpg": True, "spacer.gif": False}  # the deleted ones forgotten
    assert index_status(idx)["pictures"] == {"read": 3, "with_video": 2}
    remove_from_index([str(camera)], idx)  # its folder taken out: nothing of it is counted
    assert index_status(idx)["pictures"] == {"read": 0, "with_video": 0}


def test_a_photo_that_cannot_be_read_is_listed_and_read_once_it_can(tmp_path, test_model, monkeypatch):
    """A photo the scan cannot read (permissions, a share's I/O error) may hold a video: it is listed as failed with
    the reason, as a video that cannot be read is, and no verdict is kept of it, so the update after a chmod (which
    leaves the modification time) reads it. Taken for a photo without a video, it was left out for good."""
    import builtins

    import index.catalog as catalog_mod
    import vtr.data.motion_photo as motion_photo
    from tests.videos import indexed_frames, write_motion_photo

    camera = tmp_path / "Camera"
    camera.mkdir()
    frames = indexed_frames(20, 64, 96)
    locked = write_motion_photo(camera / "PXL_1.MP.jpg", frames[5], frames)

    def refusing(path, *args, **kwargs):  # as a file of another user's is to this one (the tests run as root)
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return builtins.open(path, *args, **kwargs)
    idx = str(tmp_path / "idx")
    with monkeypatch.context() as m:
        for module in (motion_photo, catalog_mod, build_mod):
            m.setattr(module, "open", refusing, raising=False)
        first = build_index([str(camera)], idx, model=test_model, workers=0, progress=False)
        assert (first.failed, first.failures) == (1, [(str(locked), "cannot read: Permission denied")])
        assert build_index(None, idx, model=test_model, workers=0, progress=False).failed == 0  # as before
    later = build_index(None, idx, model=test_model, workers=0, progress=False)
    cat = Catalog(Path(idx) / "catalog.sqlite")
    try:
        assert [(f.path, f.status) for f in cat.files()] == [(str(locked), "ok")]
    finally:
        cat.close()
    assert later.failed == 0 and later.embedded_windows > 0


def test_an_index_decoded_by_decord_embeds_its_ts_mpeg_and_avi_files_again_once(tmp_path, test_model):
    """decord, the index's decoder before PyAV, could return other frames than asked from MPEG-TS, MPEG-PS and AVI
    with B-frames: an older index (no ``pyav_frames`` mark) embeds its files of those kinds again, once."""
    root = tmp_path / "videos"
    make_video(root / "camcorder.mts", 6, seed=1)
    make_video(root / "phone.mp4", 6, seed=2)
    write_video(root / "divx.avi", textured_frames(6, seed=3), fps=10, codec="mpeg4")
    idx = tmp_path / "idx"
    first = build_index([str(root)], str(idx), model=test_model, workers=0, progress=False)
    assert (first.added, first.redecoded) == (3, 0)  # a new index is decoded by PyAV throughout
    before = snapshot(idx)
    cat = Catalog(idx / "catalog.sqlite")
    with cat.transaction():
        cat.conn.execute("DELETE FROM meta WHERE key='pyav_frames'")  # as an index built before the mark
    cat.close()
    report = build_index(None, str(idx), model=test_model, workers=0, progress=False)
    assert (report.redecoded, report.unchanged, report.changed) == (2, 1, 0)  # the .mts and the .avi
    assert "2 decoded again" in report.summary() and report.embedded_windows > 0
    after = snapshot(idx)
    assert after.keys() == before.keys()  # the same windows, embedded again (here from the same frames)
    assert all(np.allclose(after[k], before[k], atol=1e-5) for k in after)
    again = build_index(None, str(idx), model=test_model, workers=0, progress=False)
    assert (again.redecoded, again.unchanged, again.embedded_windows) == (0, 3, 0)  # once per index


def built_now_and_before(root, idx, model, monkeypatch, counted: str, n: int, as_before: list) -> tuple[dict, dict]:
    """The snapshots of ``root`` indexed into ``idx`` as vtr reads its files now (``n`` added, none counted as
    ``BuildReport.<counted>``: a new index reads them right throughout) and as it read them before, with the
    ``(module, name, value)`` of ``as_before`` patched in; ``idx`` is left as the second one."""
    first = build_index([str(root)], str(idx), model=model, workers=0, progress=False)
    assert (first.added, getattr(first, counted)) == (n, 0)
    want = snapshot(idx)
    shutil.rmtree(idx)
    for module, name, value in as_before:
        monkeypatch.setattr(module, name, value)
    build_index([str(root)], str(idx), model=model, workers=0, progress=False)
    monkeypatch.undo()
    return want, snapshot(idx)


def reads_again_once(idx, model, want: dict, mark: str, counted: str, n: int, others: int, says: str) -> None:
    """``idx`` made as an index built before ``mark`` (its catalog without it): its update embeds ``n`` files again
    (``BuildReport.<counted>``, ``says`` in its summary) to the vectors ``want`` (a fresh build's) and leaves the
    ``others``; the update after it embeds nothing (once per index)."""
    cat = Catalog(idx / "catalog.sqlite")
    with cat.transaction():
        cat.conn.execute("DELETE FROM meta WHERE key=?", (mark,))
    cat.close()
    report = build_index(None, str(idx), model=model, workers=0, progress=False)
    assert (getattr(report, counted), report.unchanged, report.changed) == (n, others, 0)
    assert says in report.summary()
    after = snapshot(idx)
    assert after.keys() == want.keys() and all(np.allclose(after[k], want[k], atol=1e-5) for k in after)
    again = build_index(None, str(idx), model=model, workers=0, progress=False)
    assert (getattr(again, counted), again.unchanged, again.embedded_windows) == (0, n + others, 0)


def test_an_index_built_before_tone_mapping_and_deinterlacing_reads_those_files_again_once(tmp_path, test_model,
                                                                                           monkeypatch):
    """An HLG video (an iPhone's) and an interlaced one (a camcorder's) in an index built before HDR was tone-mapped
    and fields deinterlaced, their windows and thumbnails made from dull or combed frames: an older index (no
    ``sdr_progressive_frames`` mark) embeds them again, once; a plain SDR file stays."""
    import vtr.data.hdr
    import vtr.data.video
    from tests.videos import write_hdr_video, write_interlaced_video

    root = tmp_path / "videos"
    root.mkdir()
    frames = textured_frames(40, seed=5, height=64, width=96)
    write_hdr_video(root / "iphone.mov", frames, "hlg", fps=10)
    write_video(root / "sdr.mp4", frames, fps=10)
    write_interlaced_video(root / "camcorder.mts", n=50)
    idx = tmp_path / "idx"
    want, old = built_now_and_before(root, idx, test_model, monkeypatch, "reread", 3,
                                     [(vtr.data.hdr, "is_hdr", lambda frame: False),
                                      (vtr.data.video, "deinterlace_frame", lambda frame: frame)])
    for name in ("iphone.mov", "camcorder.mts"):
        keys = [k for k in old if k[0] == name]
        assert keys and any(not np.allclose(old[k], want[k], atol=1e-3) for k in keys), name  # from other frames
    reads_again_once(idx, test_model, want, "sdr_progressive_frames", "reread", 2, 1, "2 HDR or interlaced read anew")


def test_an_index_built_before_transparency_was_put_over_white_reads_such_files_again_once(tmp_path, test_model,
                                                                                           monkeypatch):
    """An editor's overlay with transparency (ProRes 4444) in an index built before transparent pixels were put over
    white: its windows and thumbnails showed the green stored under them. An older index (no
    ``transparency_over_white`` mark) embeds it again, once; an opaque file stays."""
    import vtr.data.image
    from tests.videos import transparent_frames

    root = tmp_path / "videos"
    root.mkdir()
    with av.open(str(root / "lower_third.mov"), "w") as out:
        stream = out.add_stream("prores_ks", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuva444p10le"
        for f in transparent_frames(20):
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgba")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    make_video(root / "plain.mp4", 3, seed=2)
    idx = tmp_path / "idx"
    want, old = built_now_and_before(root, idx, test_model, monkeypatch, "transparent", 2,
                                     [(vtr.data.image, "has_alpha", lambda frame: False)])
    keys = [k for k in old if k[0] == "lower_third.mov"]
    assert keys and any(not np.allclose(old[k], want[k], atol=1e-3) for k in keys)  # from the green frames
    reads_again_once(idx, test_model, want, "transparency_over_white", "transparent", 1, 1,
                     "1 with transparency read anew")


def test_an_index_built_before_webm_transparency_was_read_reads_such_files_again_once(tmp_path, test_model,
                                                                                       monkeypatch):
    """A chat's video sticker (VP9 with alpha) in an index built before vtr read a WebM's transparency: its windows
    and thumbnails showed the green stored under it (FFmpeg's own decoder drops the alpha). An older index (no
    ``vpx_alpha_over_white`` mark, which came after ``transparency_over_white``) embeds it again, once."""
    import vtr.data.sources
    from tests.videos import transparent_frames, write_alpha_webm

    root = tmp_path / "videos"
    root.mkdir()
    write_alpha_webm(root / "sticker.webm", transparent_frames(20))
    make_video(root / "plain.mp4", 3, seed=2)
    idx = tmp_path / "idx"
    want, old = built_now_and_before(root, idx, test_model, monkeypatch, "transparent", 2,
                                     [(vtr.data.sources, "_vpx_file_as_apng", lambda *key: None)])
    keys = [k for k in old if k[0] == "sticker.webm"]
    assert keys and any(not np.allclose(old[k], want[k], atol=1e-3) for k in keys)  # from the green frames
    reads_again_once(idx, test_model, want, "vpx_alpha_over_white", "transparent", 1, 1,
                     "1 with transparency read anew")


def test_frames_players_never_show_are_left_out_and_older_indexes_read_such_files_again(tmp_path, test_model):
    """A clip cut with `ffmpeg -ss ... -c copy` or LosslessCut (an edit list hides the frames before the cut, which
    the header still counts) and a TV recording started between keyframes (its first frames cannot be decoded) are
    indexed on the frames players show: 6.4 s and 4 s here. Before, their windows were placed counting the hidden
    frames (7.0 s, 4.5 s: off by them), and some ends "could not be decoded" (listed as indexed in part). An older
    index (no ``hidden_frames_left_out`` mark) embeds such files again, once."""
    from tests.videos import write_cut_in_recording, write_trimmed_copy

    root = tmp_path / "videos"
    root.mkdir()
    src = write_video(tmp_path / "src.mp4", textured_frames(10, seed=4, height=64, width=96), fps=10,
                      options={"preset": "veryfast", "crf": "18", "x264-params": "keyint=30:scenecut=0"})
    write_trimmed_copy(src, root / "trimmed.mp4", 3.6)  # the keyframe at 3 s: 6 frames hidden, 6.4 s shown
    write_cut_in_recording(root / "tv.ts", textured_frames(6, seed=5, height=64, width=96), fps=10, keyint=20)
    make_video(root / "plain.mp4", 9, seed=2)
    idx = tmp_path / "idx"
    first = build_index([str(root)], str(idx), model=test_model, workers=0, progress=False)
    assert (first.added, first.partial, first.trimmed) == (3, 0, 0), first.partials
    ends = {name: max(w.end for f, w in snapshot_windows(idx) if f.path.endswith(name))
            for name in ("trimmed.mp4", "tv.ts")}
    assert ends == {"trimmed.mp4": pytest.approx(6.4), "tv.ts": pytest.approx(4.0)}  # tv.ts: from frame 20 of 60
    want = snapshot(idx)
    cat = Catalog(idx / "catalog.sqlite")  # as an older index could leave it: listed in part, before the mark
    with cat.transaction():
        cat.conn.execute("UPDATE files SET error=? WHERE path LIKE '%trimmed.mp4'",
                         ("the video cannot be decoded past 6.4 s of 7.0 s (damaged or cut short)",))
        cat.conn.execute("DELETE FROM meta WHERE key='hidden_frames_left_out'")
    cat.close()
    assert len(index_status(str(idx))["partial"]) == 1
    report = build_index(None, str(idx), model=test_model, workers=0, progress=False)
    assert (report.trimmed, report.unchanged, report.partial) == (2, 1, 0)
    assert "2 trimmed or cut in read anew" in report.summary()
    assert index_status(str(idx))["partial"] == []
    after = snapshot(idx)
    assert after.keys() == want.keys() and all(np.allclose(after[k], want[k], atol=1e-5) for k in after)
    again = build_index(None, str(idx), model=test_model, workers=0, progress=False)
    assert (again.trimmed, again.unchanged, again.embedded_windows) == (0, 3, 0)  # once per index


def test_a_recording_started_on_a_keyframe_of_an_open_group_is_indexed_from_it(tmp_path, test_model):
    """A TV tuner's MPEG-2 recording that starts on an I-frame, whose two B-frames after it (shown before it, from the
    group before) do not decode: indexed on the frames from the I-frame, 4.8 s of the 6 s written. Before, the two
    were counted: its windows were placed two frames early, and its end "could not be decoded". An older index (no
    ``open_gop_leads_left_out`` mark) embeds it again, once."""
    from tests.videos import write_open_gop_recording

    root = tmp_path / "videos"
    root.mkdir()
    write_open_gop_recording(root / "tv.ts", textured_frames(6, seed=5, height=64, width=96), fps=10, keyint=10)
    make_video(root / "plain.mp4", 9, seed=2)
    idx = tmp_path / "idx"
    first = build_index([str(root)], str(idx), model=test_model, workers=0, progress=False)
    assert (first.added, first.partial) == (2, 0), first.partials
    assert max(w.end for f, w in snapshot_windows(idx) if f.path.endswith("tv.ts")) == pytest.approx(4.8)
    reads_again_once(idx, test_model, snapshot(idx), "open_gop_leads_left_out", "trimmed", 1, 1,
                     "1 trimmed or cut in read anew")


def test_a_recording_with_a_stretch_of_zeros_is_indexed_to_its_end(tmp_path, test_model):
    """An MPEG-TS with 200 KB of zeros in its middle (a copy with a hole): indexed to its end, 12 s. Before, its
    packets ended at the zeros with no error, and it was indexed as the part before them. An older index (no
    ``holes_read_past`` mark) embeds it again, once."""
    from tests.videos import write_holed_ts

    root = tmp_path / "videos"
    root.mkdir()
    write_holed_ts(root / "recording.ts", textured_frames(12, seed=7, height=64, width=96))
    make_video(root / "plain.mp4", 9, seed=2)
    idx = tmp_path / "idx"
    report = build_index([str(root)], str(idx), model=test_model, workers=0, progress=False)
    assert (report.added, report.partial, report.failed) == (2, 0, 0), report.partials
    assert max(w.end for f, w in snapshot_windows(idx) if f.path.endswith(".ts")) == pytest.approx(12.0)
    reads_again_once(idx, test_model, snapshot(idx), "holes_read_past", "retimed", 1, 1,
                     "1 re-timed (frame times read anew)")


def test_a_video_with_damaged_packets_is_indexed_whole(tmp_path, test_model):
    """An H.264 MP4 and an old camera's MJPEG AVI, two packets of each zeroed (a hole in a copy): every window indexed,
    and neither listed as indexed in part. Before, the first damaged packet ended the reading (of the MP4's keyframe's
    group; of the AVI, the rest of it): windows lost, and "cannot be decoded past" said of a file that decodes to its
    end. An older index (no ``damaged_packets_passed_over_in_every_codec`` mark) embeds the files it lists in part
    again, once."""
    from tests.videos import damage_packets, write_damaged_mp4

    root = tmp_path / "videos"
    root.mkdir()
    write_damaged_mp4(root / "phone.mp4", textured_frames(12, seed=7, height=64, width=96), fps=10,
                      damaged=(45, 46), keyint=100)
    damage_packets(write_video(root / "camera.avi", textured_frames(12, seed=8, height=64, width=96), fps=10,
                               codec="mjpeg", pix_fmt="yuvj420p"), (45, 46))
    idx = tmp_path / "idx"
    report = build_index([str(root)], str(idx), model=test_model, workers=0, progress=False)
    assert (report.added, report.partial, report.failed) == (2, 0, 0), report.partials
    ends = {}
    for f, w in snapshot_windows(idx):
        ends[Path(f.path).name] = max(ends.get(Path(f.path).name, 0), w.end)
    assert ends == {"phone.mp4": pytest.approx(12.0), "camera.avi": pytest.approx(12.0)}
    want = snapshot(idx)
    cat = Catalog(idx / "catalog.sqlite")  # as an older index left them: listed in part
    with cat.transaction():
        cat.conn.execute("UPDATE files SET error=?", ("the video cannot be decoded past 4.5 s of 12.0 s (damaged or "
                                                      "cut short)",))
    cat.close()
    reads_again_once(idx, test_model, want, "damaged_packets_passed_over_in_every_codec", "retried", 2, 0,
                     "2 that failed before tried again")
    assert index_status(str(idx))["partial"] == []


def test_adding_a_folder_embeds_it_as_the_index_was_embedded(tmp_path, test_model_folder):
    """`vtr index build --index IDX NEW_FOLDER` on an existing index: its model and windows, not the defaults (which
    would load the release model, and then stop on a manifest that differs)."""
    from vtr.cli import main as cli_main

    make_video(tmp_path / "first" / "a.mp4", 9, seed=1)
    make_video(tmp_path / "more" / "b.mp4", 14, seed=2)
    idx = tmp_path / "idx"
    assert cli_main(["index", "build", "--index", str(idx), "--model", str(test_model_folder), "--window-s", "6",
                     "--stride-s", "3", "--window-policy", "stride", "--workers", "0", str(tmp_path / "first")]) == 0
    before = index_status(str(idx))["manifest"]
    assert cli_main(["index", "build", "--index", str(idx), "--workers", "0", str(tmp_path / "more")]) == 0
    after = index_status(str(idx))["manifest"]
    assert {k: after[k] for k in ("model", "weights_checksum", "window_s", "stride_s")} == \
        {k: before[k] for k in ("model", "weights_checksum", "window_s", "stride_s")} == \
        {"model": str(test_model_folder), "weights_checksum": before["weights_checksum"], "window_s": 6.0,
         "stride_s": 3.0}
    windows = {k[0]: [] for k in snapshot(idx)}
    for name, start, end in snapshot(idx):
        windows[name].append((start, end))
    # 6 s every 3 s, the last one ending at the end
    assert sorted(windows["b.mp4"]) == [(0.0, 6.0), (3.0, 9.0), (6.0, 12.0), (8.0, 14.0)]
    assert len(windows["a.mp4"]) == 2
    # a new index still takes the defaults
    from index.commands import build_command
    assert "videomamba_m16_25M" in build_command.__doc__
    from index.embed import DEFAULT_MODEL
    assert DEFAULT_MODEL == "videomamba_m16_25M"


def test_a_folder_that_is_not_there_keeps_its_files(tmp_path, test_model, capsys):
    """An update while a recorded folder is away (a drive not mounted) scans the others and deletes nothing of it;
    with every folder away it changes nothing and says why."""
    from vtr.errors import VtrError

    drive, home = tmp_path / "drive", tmp_path / "home"
    make_video(drive / "a.mp4", 5, seed=1)
    make_video(home / "b.mp4", 5, seed=2)
    idx = tmp_path / "idx"
    build_index([str(drive), str(home)], str(idx), model=test_model, workers=0, progress=False)
    before = snapshot(idx)
    drive.rename(tmp_path / "unmounted")
    make_video(home / "c.mp4", 5, seed=3)
    report = build_index(None, str(idx), model=test_model, workers=0, progress=False)
    assert (report.deleted, report.added, report.missing_roots) == (0, 1, [str(drive)])
    assert "not found, so not re-scanned (their files kept; --forget-missing drops them): " + str(drive) \
        in report.summary()
    after = snapshot(idx)
    assert {k: v.tolist() for k, v in after.items() if k[0] != "c.mp4"} == {k: v.tolist() for k, v in before.items()}
    # `vtr index status` (and the app's Index tab, which reads the same dict) marks the folder that is away
    from index.commands import status_command

    assert index_status(str(idx))["missing_roots"] == [str(drive)]
    status_command(str(idx))
    assert f"folders   {drive} (not found), {home}\n" in capsys.readouterr().out
    home.rename(tmp_path / "away")
    with pytest.raises(VtrError, match="none of the folders .* is there .*Nothing was changed"):
        build_index(None, str(idx), model=test_model, workers=0, progress=False)
    assert snapshot(idx).keys() == after.keys()
    (tmp_path / "unmounted").rename(drive)
    (tmp_path / "away").rename(home)
    report = build_index(None, str(idx), model=test_model, workers=0, progress=False)
    assert (report.deleted, report.added, report.unchanged, report.missing_roots) == (0, 0, 3, [])
    # a folder deleted for good: forgotten on request, with its videos
    shutil.rmtree(drive)
    assert build_index(None, str(idx), model=test_model, workers=0, progress=False).missing_roots == [str(drive)]
    report = build_index(None, str(idx), model=test_model, workers=0, progress=False, forget_missing=True)
    assert (report.deleted, report.missing_roots) == (1, [])
    assert sorted(k[0] for k in snapshot(idx)) == ["b.mp4", "c.mp4"]
    cat = Catalog(idx / "catalog.sqlite")
    try:
        assert cat.get_meta("roots") == [str(home)]
    finally:
        cat.close()


def test_one_build_of_an_index_at_a_time(tmp_path, test_model):
    """A second build while one runs (a cron update beside the app's) stops at once and names the first; both
    embedding the same pending files would have committed their windows twice."""
    from index.build import build_lock
    from vtr.errors import VtrError

    make_video(tmp_path / "videos" / "a.mp4", 5, seed=1)
    idx = tmp_path / "idx"
    idx.mkdir()
    with build_lock(idx):
        with pytest.raises(VtrError, match=rf"is being built by process {os.getpid()} on .*when it has finished"):
            build_index([str(tmp_path / "videos")], str(idx), model=test_model, workers=0, progress=False)
    report = build_index([str(tmp_path / "videos")], str(idx), model=test_model, workers=0, progress=False)
    assert report.added == 1 and (idx / "build.lock").read_text() == ""


def test_a_model_folder_is_recorded_by_its_full_path(tmp_path, test_model_folder, monkeypatch):
    """`--model runs/demo/model` from one directory: searches and updates from any other find it. An index that
    recorded it as typed (before) upgrades on an update from where it was built, and elsewhere says what to do."""
    import json

    from index.search import VideoIndex
    from vtr.errors import VtrError

    make_video(tmp_path / "videos" / "a.mp4", 5, seed=1)
    idx = tmp_path / "idx"
    monkeypatch.chdir(test_model_folder.parent.parent)
    relative = os.path.join(test_model_folder.parent.name, test_model_folder.name)
    build_index([str(tmp_path / "videos")], str(idx), model=relative, workers=0, progress=False)
    assert index_status(str(idx))["manifest"]["model"] == str(test_model_folder)
    monkeypatch.chdir(tmp_path)
    with VideoIndex(str(idx), gpu=False) as vi:
        assert vi.search("anything", k=1)
    # as an index built before recorded it
    manifest = json.loads((idx / "manifest.json").read_text())
    (idx / "manifest.json").write_text(json.dumps({**manifest, "model": relative}))
    with pytest.raises(VtrError, match="not found from .*run from the folder it was built in once"):
        build_index(None, str(idx), workers=0, progress=False)
    monkeypatch.chdir(test_model_folder.parent.parent)
    assert build_index(None, str(idx), workers=0, progress=False).unchanged == 1
    assert index_status(str(idx))["manifest"]["model"] == str(test_model_folder)


def test_a_model_folder_moved_after_the_build_is_said_so(tmp_path, test_model_folder):
    """Its full path in the manifest names nothing any more: it was "unknown model '/path'; known: ..."."""
    import shutil

    from index.search import VideoIndex
    from vtr.errors import VtrError

    make_video(tmp_path / "videos" / "a.mp4", 5, seed=1)
    model = tmp_path / "model"
    shutil.copytree(test_model_folder, model)
    idx = tmp_path / "idx"
    build_index([str(tmp_path / "videos")], str(idx), model=str(model), workers=0, progress=False)
    model.rename(tmp_path / "moved")
    with VideoIndex(str(idx), gpu=False) as vi:
        with pytest.raises(VtrError, match=f"model folder {model} is not there .*pass --model with the folder's new"):
            vi.search("anything", k=1)
    with VideoIndex(str(idx), model=str(tmp_path / "moved"), gpu=False) as vi:
        assert vi.search("anything", k=1)


def test_a_moved_folder_keeps_its_vectors(tmp_path, test_model):
    """~/Videos moved to ~/Media: adding ~/Media finds its files by content (renamed, nothing embedded again) and
    the old folder, now empty in the catalog, is no longer recorded; nothing is listed twice."""
    from index.catalog import Catalog

    old, new = tmp_path / "Videos", tmp_path / "Media"
    make_video(old / "a.mp4", 5, seed=1)
    make_video(old / "trip" / "b.mp4", 9, seed=2)
    idx = tmp_path / "idx"
    build_index([str(old)], str(idx), model=test_model, workers=0, progress=False)
    before = snapshot(idx)
    old.rename(new)
    make_video(new / "c.mp4", 5, seed=3)
    report = build_index([str(new)], str(idx), model=test_model, workers=0, progress=False)
    assert (report.renamed, report.added, report.deleted, report.missing_roots) == (2, 1, 0, [])
    after = snapshot(idx)
    assert {k: v.tolist() for k, v in after.items() if k[0] != "c.mp4"} == {k: v.tolist() for k, v in before.items()}
    cat = Catalog(idx / "catalog.sqlite")
    try:
        assert cat.get_meta("roots") == [str(new)]
        assert sorted(f.path for f in cat.files("ok")) == [str(new / "a.mp4"), str(new / "c.mp4"),
                                                            str(new / "trip" / "b.mp4")]
    finally:
        cat.close()
    again = build_index(None, str(idx), model=test_model, workers=0, progress=False)
    assert (again.unchanged, again.embedded_windows, again.missing_roots) == (3, 0, [])


@pytest.mark.parametrize("flag, value, says", [("window_s", 0.0, "--window-s must be positive, not 0"),
                                                ("stride_s", -1.0, "--stride-s must be positive, not -1"),
                                                ("batch_size", 0, "--batch-size must be at least 1, not 0"),
                                                ("timeout_s", 0.0, "--timeout-s must be positive, not 0"),
                                                ("workers", -1, "--workers must be 0 .* or more, not -1"),
                                                ("window_policy", "bogus", "unknown window policy 'bogus'")])
def test_numbers_no_build_can_use_are_refused_before_the_model_loads(tmp_path, flag, value, says):
    # before: --window-s 0 failed every file with ZeroDivisionError, --batch-size 0 raised a ValueError traceback;
    # then each was refused after the index folder was made, and left it empty with its lock file
    from vtr.errors import VtrError

    make_video(tmp_path / "videos" / "a.mp4", 3, seed=1)
    with pytest.raises(VtrError, match=says):  # the model named does not exist: the check came first
        build_index([str(tmp_path / "videos")], str(tmp_path / "idx"), model="no_such_model", progress=False,
                    **{flag: value})
    assert not (tmp_path / "idx").exists()


def test_a_faiss_factory_faiss_cannot_parse_is_refused_before_embedding(tmp_path, test_model, monkeypatch):
    from vtr.errors import VtrError

    make_video(tmp_path / "videos" / "a.mp4", 3, seed=1)
    monkeypatch.setattr(build_mod, "embed_chunks", lambda *a, **k: pytest.fail("embedded before the check"))
    with pytest.raises(VtrError, match="--factory 'Bogus': FAISS cannot build it .*could not parse"):
        build_index([str(tmp_path / "videos")], str(tmp_path / "idx"), model=test_model, factory="Bogus",
                    workers=0, progress=False)
    assert not (tmp_path / "idx").exists()  # the new folder, its lock file alone in it, is not left behind


def test_a_new_index_whose_build_fails_at_once_leaves_no_folder_and_a_folder_there_before_stays(tmp_path):
    """An unknown model's build made the new index folder, then failed and left it, empty but for its lock file."""
    from vtr.errors import VtrError

    make_video(tmp_path / "videos" / "a.mp4", 3, seed=1)
    for idx in (tmp_path / "new.idx", tmp_path / "made before.idx"):
        if "before" in idx.name:
            idx.mkdir()
        with pytest.raises(VtrError, match="unknown model 'no_such_model'"):
            build_index([str(tmp_path / "videos")], str(idx), model="no_such_model", progress=False)
    assert not (tmp_path / "new.idx").exists() and (tmp_path / "made before.idx").is_dir()


def test_a_build_refused_by_another_builds_lock_leaves_that_builds_new_folder(tmp_path):
    """Two builds of one new index started at once both find no folder (both "created" it); the second is refused
    by the first's lock while the folder holds only that lock, and must not remove it under the first. Another
    failure of a build that created the folder removes it."""
    from index.build import LOCK, IndexNotReady, _removed_if_failed_empty
    from vtr.errors import VtrError

    for error, kept in [(IndexNotReady("is being built by process 1"), True), (VtrError("unknown model"), False)]:
        folder = tmp_path / f"{kept}.idx"
        folder.mkdir()
        (folder / LOCK).touch()  # the first build's lock, or this build's own
        with pytest.raises(type(error)), _removed_if_failed_empty(folder, created=True):
            raise error
        assert (folder / LOCK).is_file() == kept and folder.exists() == kept


def test_the_progress_bar_moves_inside_a_long_file(tmp_path, test_model, capsys, monkeypatch):
    """An hour-long video is one file of 30-60 chunks: the bar moves chunk by chunk, not only when a file ends (it
    stood at 0% for the whole of a single long file), a failed file counts as done, and the bar ends on its total
    exactly (fractions summed step by step ended past it, with a negative time left). The app's progress (gradio's
    ``track_tqdm``) sees only ``tqdm.update`` calls, so the bar must move through them."""
    import tqdm

    updates, update = [], tqdm.tqdm.update  # wrapped as gradio wraps it
    monkeypatch.setattr(tqdm.tqdm, "update", lambda self, n=1: updates.append(n) or update(self, n))
    root = tmp_path / "videos"
    for i in range(5):
        make_video(root / f"long{i}.mp4", 30, seed=i)  # 7 stride windows: 7 chunks of 1, sevenths of a file
    (root / "broken.mp4").write_bytes(b"this is not a video")
    report = build_index([str(root)], str(tmp_path / "idx"), model=test_model, workers=0, chunk_windows=1,
                         progress=True, window_policy="stride")
    assert (report.total_windows, report.failed) == (35, 1)
    shown = [line for line in capsys.readouterr().err.replace("\r", "\n").splitlines() if "indexing:" in line]
    percents = {int(line.split("indexing:")[1].split("%")[0]) for line in shown}
    assert len(percents - {0, 100}) >= 10, shown  # a chunk is 1/42 of the work; file by file there were 5 steps
    assert shown[-1].startswith("indexing: 100%") and "<-" not in shown[-1], shown[-1]
    assert ", 6/6 files, 35 windows, " in shown[-1] and shown[-1].endswith(" windows/s, 1 failed]"), shown[-1]
    seen = np.cumsum(updates)
    assert len({round(x, 3) for x in seen}) >= 10 and abs(seen[-1] - 6) < 1e-9, updates  # what the app shows


def test_a_line_logged_during_a_build_goes_above_the_bar_not_after_its_text(tmp_path, test_model, capsys):
    """The build logs a failed file while its bar runs (as the pool logs starting decode workers): the line was
    written after the bar's text ("... 1 failed]2026-12-07 ... INFO index.build: failed: ..."). It now goes through
    tqdm, which clears the bar, writes the line and draws the bar again below it."""
    import logging
    import sys

    handler = logging.StreamHandler(sys.stderr)  # as `vtr`'s logging.basicConfig: the console, sys.stderr
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.root.addHandler(handler)
    build_logger = logging.getLogger("index.build")
    level = build_logger.level
    build_logger.setLevel(logging.INFO)
    try:
        root = tmp_path / "videos"
        make_video(root / "a.mp4", 6, seed=1)
        (root / "broken.mp4").write_bytes(b"this is not a video")
        report = build_index([str(root)], str(tmp_path / "idx"), model=test_model, workers=0, progress=True)
    finally:
        logging.root.removeHandler(handler)
        build_logger.setLevel(level)
    assert report.failed == 1
    err = capsys.readouterr().err
    at = err.index("INFO index.build: failed: ")
    assert err[at - 1] in "\r\n", repr(err[max(0, at - 80):at + 40])  # on a line of its own
    assert "indexing:" in err[at:]  # the bar drawn again after it
    assert logging.root.handlers.count(handler) == 0 and all(
        type(h).__name__ != "_TqdmLoggingHandler" for h in logging.root.handlers)  # the console handlers restored


def test_the_encoder_batch_is_4_windows_on_a_cpu_and_16_on_a_gpu(tmp_path, test_model, monkeypatch):
    """On a CPU a batch of 16 held 1.2 GB more than a batch of 4 at the same speed, so a build without
    ``batch_size`` encodes 4 windows at a time there; a GPU needs larger batches to fill it."""
    from index.embed import WindowEmbedder, default_batch_size

    assert WindowEmbedder(test_model).batch_size == 4 and WindowEmbedder(test_model, 2).batch_size == 2
    assert default_batch_size("cuda:1") == default_batch_size(torch.device("cuda")) == 16
    assert default_batch_size("cpu") == default_batch_size(None) == 4
    sizes, encode = [], test_model.encode_video
    monkeypatch.setattr(test_model, "encode_video", lambda x, **kw: sizes.append(len(x)) or encode(x, **kw))
    make_video(tmp_path / "videos" / "v.mp4", 30, seed=1)  # 7 stride windows, one chunk
    report = build_index([str(tmp_path / "videos")], str(tmp_path / "idx"), model=test_model, workers=0,
                         progress=False, window_policy="stride")
    assert report.total_windows == 7 and sizes == [4, 3], sizes


def test_an_update_with_nothing_to_embed_loads_no_model(tmp_path, test_model_folder, monkeypatch):
    """A cron `vtr index update` of an unchanged collection: with the release model it loaded 0.7 GB of weights
    (3.4 s, 1.7 GB of memory) to embed nothing. Deletions and renames need no model either; a new file does."""
    from index import embed, update_index
    from index.search import VideoIndex

    make_video(tmp_path / "videos" / "a.mp4", 6, seed=1)
    make_video(tmp_path / "videos" / "b.mp4", 6, seed=2)
    idx = tmp_path / "idx"
    build_index([str(tmp_path / "videos")], str(idx), model=str(test_model_folder), workers=0, progress=False)
    loads = []
    real = embed.load_model
    monkeypatch.setattr("index.build.load_model", lambda *a, **k: loads.append(a) or real(*a, **k))

    nothing = update_index(str(idx), workers=0, progress=False)
    assert (nothing.unchanged, nothing.embedded_windows, nothing.total_files, loads) == (2, 0, 2, [])
    (tmp_path / "videos" / "b.mp4").rename(tmp_path / "videos" / "c.mp4")
    (tmp_path / "videos" / "a.mp4").unlink()
    moved = update_index(str(idx), workers=0, progress=False)
    assert (moved.renamed, moved.deleted, moved.total_files, loads) == (1, 1, 1, [])
    with VideoIndex(str(idx), gpu=False) as vi:
        assert {s.path for s in vi.search("anything", k=3)} == {str(tmp_path / "videos" / "c.mp4")}
    make_video(tmp_path / "videos" / "d.mp4", 6, seed=3)
    added = update_index(str(idx), workers=0, progress=False)
    assert (added.added, added.total_files, len(loads)) == (1, 2, 1) and added.embedded_windows > 0


def test_a_copy_of_an_indexed_video_reuses_its_windows_instead_of_embedding_them(tmp_path, test_model_folder,
                                                                                  monkeypatch):
    """A backup folder added to an index held the same videos again: each was decoded and embedded again (with the
    release model, minutes an hour of video). Same content (hash and size): the same windows, vectors and
    thumbnails, and no model is loaded when nothing else is new."""
    from index import embed, update_index

    make_video(tmp_path / "phone" / "a.mp4", 9, seed=1)
    idx = tmp_path / "idx"
    build_index([str(tmp_path / "phone")], str(idx), model=str(test_model_folder), workers=0, progress=False)
    shutil.copy(tmp_path / "phone" / "a.mp4", tmp_path / "phone" / "a copy.mp4")
    loads = []
    real = embed.load_model
    monkeypatch.setattr("index.build.load_model", lambda *a, **k: loads.append(a) or real(*a, **k))
    report = update_index(str(idx), workers=0, progress=False)
    assert (report.added, report.copies, report.embedded_windows, loads) == (1, 1, 0, [])
    assert "1 new (1 copy of an indexed video, not embedded again)" in report.summary()
    rows = _windows_by_file(idx)
    (a, wa), (b, wb) = rows[str(tmp_path / "phone" / "a.mp4")], rows[str(tmp_path / "phone" / "a copy.mp4")]
    # the copy's catalog row: the source's media facts (durations and rates from the file, not timings)
    assert (a.duration, a.fps, a.width, a.height, b.status) == (b.duration, b.fps, b.width, b.height, "ok")
    assert [(w.start, w.end) for w, _ in wa] == [(w.start, w.end) for w, _ in wb] and wa
    assert all(np.array_equal(va, vb) for (_, va), (_, vb) in zip(wa, wb))
    assert all(thumbnail_path(idx, w.id).read_bytes() == thumbnail_path(idx, v.id).read_bytes()
               for (w, _), (v, _) in zip(wa, wb))
    assert index_status(str(idx))["windows"] == 2 * len(wa)
    # a new video with content of its own is embedded as ever
    make_video(tmp_path / "phone" / "b.mp4", 9, seed=2)
    again = update_index(str(idx), workers=0, progress=False)
    assert (again.added, again.copies, len(loads)) == (1, 0, 1) and again.embedded_windows > 0


def _windows_by_file(idx) -> dict:
    """{path: (file row, [(window row, vector)])} of an index folder."""
    cat = Catalog(Path(idx) / "catalog.sqlite")
    try:
        out = {}
        for f in cat.files("ok"):
            vectors = dict(zip(*_ids_and_vectors(cat, f.id)))
            out[f.path] = (f, [(w, vectors[w.id]) for w in cat.windows_of(f.id)])
        return out
    finally:
        cat.close()


def _ids_and_vectors(cat, file_id):
    rows = cat.conn.execute("SELECT id, embedding FROM windows WHERE file_id=?", (file_id,)).fetchall()
    return [r[0] for r in rows], [np.frombuffer(r[1], dtype=np.float32) for r in rows]


def test_a_copy_made_before_its_source_changed_keeps_the_old_windows_and_thumbnails(tmp_path, test_model):
    """`cp b.mp4 a.mp4`, then b.mp4 edited: one update copies b's old windows to a.mp4 (met first) and embeds the
    new b.mp4; the thumbnails a.mp4 takes are written before b's old ones are removed."""
    videos = tmp_path / "videos"
    make_video(videos / "b.mp4", 9, seed=1)
    idx = tmp_path / "idx"
    build_index([str(videos)], str(idx), model=test_model, workers=0, progress=False)
    (old_b, old_windows), = _windows_by_file(idx).values()
    shutil.copy(videos / "b.mp4", videos / "a.mp4")
    make_video(videos / "b.mp4", 7, seed=2)  # edited in place
    report = build_index(None, str(idx), model=test_model, workers=0, progress=False)
    assert (report.added, report.copies, report.changed) == (1, 1, 1)
    a, a_windows = _windows_by_file(idx)[str(videos / "a.mp4")]
    assert a.duration == old_b.duration and len(a_windows) == len(old_windows)  # media length, not a timing
    assert all(np.array_equal(va, vb) for (_, va), (_, vb) in zip(a_windows, old_windows))
    assert all(thumbnail_path(idx, w.id).is_file() for w, _ in a_windows)


def test_an_avi_capture_that_dropped_frames_is_indexed_whole_and_older_indexes_read_it_again(tmp_path, test_model):
    """A capture that dropped frames (empty AVI chunks, which the header counts): before, its frames were counted one
    by one, its windows drifted early and its last ones "could not be decoded" ("indexed in part"). It is indexed
    whole, to its last second; an older index (no ``dropped_frames_timed`` mark) embeds it again, once, counted as
    re-timed."""
    from tests.videos import write_dropping_capture

    root = tmp_path / "videos"
    root.mkdir()
    frames = textured_frames(12, seed=6, height=64, width=96)  # 12 s at 10 fps
    write_dropping_capture(root / "capture.avi", frames, dropped=range(3, len(frames), 4), fps=10)  # a quarter
    make_video(root / "plain.mp4", 9, seed=2)
    idx = tmp_path / "idx"
    first = build_index([str(root)], str(idx), model=test_model, workers=0, progress=False)
    assert (first.added, first.partial, first.failed) == (2, 0, 0), first.partials
    ends = [w.end for f, w in snapshot_windows(idx) if f.path.endswith("capture.avi")]
    assert max(ends) == pytest.approx(12.0, abs=0.1)
    reads_again_once(idx, test_model, snapshot(idx), "dropped_frames_timed", "retimed", 1, 1,
                     "1 re-timed (frame times read anew)")


def test_a_recording_whose_timestamps_jump_is_indexed_on_the_frames_it_holds(tmp_path, test_model):
    """A TV recording that resumed (two MPEG-TS parts joined, the second's clock a thousand seconds on): indexed as
    the 12 s it holds, its windows inside them, where it was indexed as 1006 s with windows over the jump. An older
    index (no ``jumps_timed_by_count`` mark) embeds it again, once, and leaves an MP4 beside it."""
    from tests.videos import write_joined_ts

    root = tmp_path / "videos"
    root.mkdir()
    frames = textured_frames(12, seed=7, height=64, width=96)  # 12 s at 10 fps
    half = len(frames) // 2
    write_joined_ts(root / "recording.ts", [(frames[:half], 0), (frames[half:], 1000)])
    report = build_index([str(root)], str(tmp_path / "idx"), model=test_model, workers=0, progress=False)
    assert (report.added, report.partial, report.failed) == (1, 0, 0), report.partials
    windows = [w for _, w in snapshot_windows(tmp_path / "idx")]
    assert max(w.end for w in windows) == pytest.approx(12.0) and len(windows) <= 4
    assert index_status(str(tmp_path / "idx"))["hours"] == pytest.approx(12 / 3600)
    make_video(root / "plain.mp4", 9, seed=2)
    build_index(None, str(tmp_path / "idx"), model=test_model, workers=0, progress=False)
    reads_again_once(tmp_path / "idx", test_model, snapshot(tmp_path / "idx"), "jumps_timed_by_count", "retimed", 1,
                     1, "1 re-timed (frame times read anew)")
