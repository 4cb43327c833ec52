"""An index kept up to date while it is searched: an open VideoIndex follows what other builds commit, and
``vtr index update --watch`` indexes videos as they arrive, once they are completely written."""

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import vtr
from index.build import build_index, build_lock
from index.scan import ScannedFile
from index.search import VideoIndex
from index.watch import Settling, watch_index
from tests.index.test_build import refuse_listing
from tests.index.media import make_video
from tests.index.test_search import RED_VECTOR, RedDetector, red_collection  # noqa: F401 (a fixture)
from vtr.errors import VtrError

REPO = Path(__file__).resolve().parents[2]


def update(idx, model, **kw):
    return build_index(None, str(idx), model=model, workers=0, progress=False, **kw)


def test_an_open_index_searches_what_other_builds_commit_after_it_opened(red_collection, test_model, monkeypatch):
    root, idx = red_collection
    monkeypatch.setattr(test_model, "encode_video", RedDetector(test_model))
    with VideoIndex(str(idx), model=test_model, gpu=False) as vi:
        assert vi.search(RED_VECTOR, k=1)[0].path == str(root / "beach.mp4")
        # a video added by another build (a cron update, the app's) is found without opening the index again
        make_video(root / "sunset.mp4", 8, seed=4, red=(0, 8))
        update(idx, test_model)
        top = vi.search(RED_VECTOR, k=1)[0]
        assert (top.path, top.score) == (str(root / "sunset.mp4"), pytest.approx(1.0))
        assert vi.status()["files"] == 4
        # a deleted one is no longer searched: still k moments, none of it
        (root / "beach.mp4").unlink()
        update(idx, test_model)
        found = vi.search(RED_VECTOR, k=4)
        assert len(found) == 4 and str(root / "beach.mp4") not in {s.path for s in found}
        assert vi.status()["files"] == 3
        # windows embedded again with other settings (--reembed): the new spans, the new manifest
        update(idx, test_model, window_s=3.0, stride_s=3.0, reembed=True)
        found = vi.search(RED_VECTOR, k=3)
        assert vi.manifest["window_s"] == 3.0 and max(w["end"] - w["start"] for s in found for w in s.windows) == 3
        with VideoIndex(str(idx), model=test_model, gpu=False) as fresh:
            assert [s.to_dict() for s in found] == [s.to_dict() for s in fresh.search(RED_VECTOR, k=3)]


def test_an_open_index_re_embedded_with_another_model_refuses_the_model_it_had(red_collection, test_model,
                                                                               monkeypatch):
    root, idx = red_collection
    with VideoIndex(str(idx), model=test_model, gpu=False) as vi:
        vi.search("a red scene", k=1)  # the model is loaded and its weights checked
        torch_seed = 99
        import torch

        torch.manual_seed(torch_seed)
        other = vtr.create_model("vtr_test", itm_trained=True)
        update(idx, other, reembed=True)
        # the vectors are another model's now: words encoded by the old one would be scored in the wrong space
        with pytest.raises(VtrError, match="checksum mismatch"):
            vi.search("a red scene", k=1)


def scanned(path, size, mtime):
    return ScannedFile(path=path, size=size, mtime=mtime)


def test_a_file_is_settled_when_two_scans_agree_or_it_was_left_alone_for_a_round():
    now = [1000.0]
    settling = Settling(quiet_s=60, clock=lambda: now[0])
    assert not settling(scanned("/v/a.mp4", 10, 990.0))  # written 10 s ago, never seen: maybe still growing
    assert settling(scanned("/v/old.mp4", 10, 900.0))  # untouched for 100 s
    settling.next_round()
    now[0] = 1005.0
    assert settling(scanned("/v/a.mp4", 10, 990.0))  # as the last scan saw it
    assert not settling(scanned("/v/b.mp4", 10, 2000.0))  # a clock ahead of ours: the first scan of it waits ...
    settling.next_round()
    assert settling(scanned("/v/b.mp4", 10, 2000.0))  # ... the second that finds it unchanged does not
    assert not settling(scanned("/v/a.mp4", 20, 1004.0))  # grew since: wait again
    settling.next_round()
    settling.next_round()  # a round that did not scan it (the index was busy) forgets it
    assert not settling(scanned("/v/a.mp4", 20, 1004.0))


def test_watch_indexes_a_video_once_it_is_written_and_says_only_what_changed(tmp_path, test_model, monkeypatch):
    root, idx = tmp_path / "videos", tmp_path / "idx"
    make_video(root / "first.mp4", 6, seed=1)
    monkeypatch.setattr(test_model, "encode_video", RedDetector(test_model))
    build_index([str(root)], str(idx), model=test_model, workers=0, progress=False)
    said: list[str] = []
    events = iter([
        lambda: make_video(root / "new.mp4", 6, seed=2, red=(0, 6)),  # written just now: waits a round
        lambda: None,
        lambda: None,  # nothing new: nothing said
        lambda: (root / "first.mp4").unlink(),
    ])
    reports = watch_index(str(idx), 30.0, rounds=5, say=said.append, sleep=lambda s: next(events)(),
                          model=test_model, workers=0, progress=False)
    assert [(r.added, r.deleted, len(r.waiting)) for r in reports] == [(0, 0, 0), (0, 0, 1), (1, 0, 0), (0, 0, 0),
                                                                      (0, 1, 0)]
    assert len(said) == 4, said
    assert said[0].endswith("1 still being written, left for later")
    assert said[1] == f"  still being written: {root / 'new.mp4'}"
    assert "1 new" in said[2] and "1 deleted" in said[3]
    with VideoIndex(str(idx), model=test_model, gpu=False) as vi:
        assert [s.path for s in vi.search(RED_VECTOR, k=5)] == [str(root / "new.mp4")]


def test_watch_says_a_folder_it_cannot_read_once(tmp_path, test_model, monkeypatch):
    root, idx = tmp_path / "videos", tmp_path / "idx"
    make_video(root / "trip" / "a.mp4", 5, seed=1)
    build_index([str(root)], str(idx), model=test_model, workers=0, progress=False)
    refuse_listing(monkeypatch, "trip")
    said: list[str] = []
    reports = watch_index(str(idx), 30.0, rounds=3, say=said.append, sleep=lambda s: None, model=test_model,
                          workers=0, progress=False)
    assert [r.deleted for r in reports] == [0, 0, 0] and reports[-1].total_files == 1
    assert len(said) == 1 and said[0].endswith(f"could not be read, so their videos were kept as they were: "
                                               f"{root / 'trip'} (Permission denied)")


def test_watch_waits_for_a_busy_index_and_stops_on_other_errors(tmp_path, test_model, monkeypatch):
    root, idx = tmp_path / "videos", tmp_path / "idx"
    make_video(root / "first.mp4", 6, seed=1)
    build_index([str(root)], str(idx), model=test_model, workers=0, progress=False)
    said: list[str] = []
    with build_lock(idx):  # another build holds the index for two rounds
        reports = watch_index(str(idx), 1.0, rounds=2, say=said.append, sleep=lambda s: None, model=test_model,
                              workers=0, progress=False)
    assert reports == [] and len(said) == 1 and "is being built by process" in said[0] and "trying again" in said[0]
    with pytest.raises(VtrError, match="more than 0, not 0"):
        watch_index(str(idx), 0, rounds=1)
    with pytest.raises(VtrError, match="more than 0, not nan"):
        watch_index(str(idx), float("nan"), rounds=1)
    # an error that waiting cannot mend (another model, without --reembed) stops the watch
    import torch

    torch.manual_seed(7)
    with pytest.raises(VtrError, match="reembed"):
        watch_index(str(idx), 1.0, rounds=3, sleep=lambda s: make_video(root / "b.mp4", 6, seed=3),
                    model=vtr.create_model("vtr_test"), workers=0, progress=False)


WATCH = [sys.executable, "-m", "vtr.cli", "index", "update", "--watch", "0.5", "--workers", "0", "--index"]


def test_the_watch_command_indexes_arrivals_for_an_open_index_and_stops_when_asked(tmp_path, test_model_folder):
    root, idx = tmp_path / "videos", tmp_path / "idx"
    make_video(root / "first.mp4", 6, seed=1)
    build_index([str(root)], str(idx), model=str(test_model_folder), workers=0, progress=False)
    with VideoIndex(str(idx), gpu=False) as vi:
        q = vi.catalog.vectors_of(vi.catalog.files()[0].id)[0]
        proc = subprocess.Popen(WATCH + [str(idx)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            assert proc.stdout.readline().startswith(f"watching the folders of {idx}")
            make_video(tmp_path / "copy.mp4", 6, seed=2)
            os.replace(tmp_path / "copy.mp4", root / "second.mp4")  # as a sync tool lands a file
            for _ in range(600):  # at most a minute: the next rounds see it, then embed it
                if len(vi.search(q, k=5)) == 2 or proc.poll() is not None:
                    break
                time.sleep(0.1)
            assert {Path(s.path).name for s in vi.search(q, k=5)} == {"first.mp4", "second.mp4"}
            # The search sees the windows once committed; the round then saves the vectors and prints its line.
            # A stop before that line (the test once sent it there) ends the round unsaid: wait for the line.
            lines = queue.Queue()
            threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
            said = ""
            while "1 new" not in said:
                said += lines.get(timeout=60)
            proc.send_signal(signal.SIGTERM)  # as a service manager stops it; Ctrl-C is the same
            proc.wait(timeout=60)
            err = proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 130, err[-2000:]
    assert f"stopped watching {idx}" in err and "Traceback" not in err


def test_an_update_of_a_folder_that_is_not_an_index_says_so_and_creates_nothing(tmp_path, capsys):
    from vtr.cli import main

    typo = tmp_path / "vtr-idnex"
    # before: it made the folder and loaded the default model (a 1 GB download) to build an index of nothing
    assert main(["index", "update", "--index", str(typo)]) == 1
    assert main(["index", "update", "--index", str(typo), "--watch", "5"]) == 1
    assert main(["index", "update", "--index", str(typo), "--watch", "0"]) == 1
    captured = capsys.readouterr()
    assert captured.err.count(f"{typo} is not an index folder; build one with `vtr index build DIR... --index") == 2
    assert "--watch is the seconds between updates: more than 0, not 0.0" in captured.err
    assert "watching" not in captured.out and not typo.exists()


def test_forget_missing_applies_to_the_first_round_only(tmp_path, test_model):
    """A drive unplugged while the watch runs is not a folder to forget, even when it started with
    --forget-missing (which dropped the folders missing then)."""
    root, idx = tmp_path / "videos", tmp_path / "idx"
    make_video(root / "first.mp4", 6, seed=1)
    build_index([str(root)], str(idx), model=test_model, workers=0, progress=False)
    said: list[str] = []
    reports = watch_index(str(idx), 1.0, rounds=2, say=said.append, model=test_model, workers=0, progress=False,
                          forget_missing=True, sleep=lambda s: root.rename(tmp_path / "unplugged"))
    assert len(reports) == 1 and "none of the folders" in said[-1]
    with VideoIndex(str(idx), model=test_model, gpu=False) as vi:
        assert vi.status()["files"] == 1


def test_catching_up_holds_exactly_the_catalogs_windows_whatever_another_process_did(tmp_path):
    """Additions are read as the ids above the last seen (ids are never reused), anything else by comparing every
    id: after any mix of additions and deletions by another connection, the open index searches exactly the
    catalog's windows."""
    import json

    from index.catalog import Catalog
    from index.layout import CATALOG, MANIFEST

    rng = np.random.default_rng(0)
    dim, meta = 16, {"duration": 8.0, "fps": 25.0, "width": 64, "height": 48}
    other = Catalog(tmp_path / CATALOG)
    (tmp_path / MANIFEST).write_text(json.dumps({"format": "vtr-index", "model": "none", "weights_checksum": "",
                                                 "num_frames": 8, "img_size": 32, "embed_dim": dim,
                                                 "window_s": 8.0, "stride_s": 4.0, "index_factory": "Flat"}))
    files = []  # (file id, windows)

    def add(n_windows):
        vecs = rng.standard_normal((n_windows, dim)).astype(np.float32)
        fid = other.upsert_pending(f"/v/{len(files)}-{rng.integers(1e9)}.mp4", 1, 0.0, None)
        other.finish_file(fid, meta, [(float(i), i + 1.0) for i in range(n_windows)], vecs)
        files.append((fid, n_windows))

    def delete(at):
        fid, n = files.pop(at)
        other.delete_file(fid)
        return n

    add(3)
    with VideoIndex(str(tmp_path), gpu=False) as vi:
        steps = [lambda: add(2), lambda: delete(0), lambda: (add(1), add(4)), lambda: (delete(-1), add(2)),
                 lambda: add(delete(-1)),  # as many windows gone as come: the count alone does not tell
                 lambda: delete(-1), lambda: (add(3), delete(0), add(1))]
        for step in steps * 3:
            with other.transaction():
                step()
            vi.search(rng.standard_normal(dim).astype(np.float32), k=2)
            assert np.array_equal(np.sort(vi.store.ids()), other.window_ids())
    other.close()
