"""Taking folders and videos out of an index (`vtr index remove`): the files stay, later updates leave them out,
naming them in a build adds them back, and no model is loaded."""

import json

import pytest

from index import build_index, index_status, remove_from_index, update_index
from index.catalog import Catalog
from index.commands import remove_command
from index.layout import thumbnail_path
from index.scan import scan_folders
from index.search import VideoIndex
from tests.index.media import make_video
from vtr.errors import VtrError


def _tree(root):
    make_video(root / "videos" / "a.mp4", 6, seed=1)
    make_video(root / "videos" / "junk" / "b.mp4", 6, seed=2)
    make_video(root / "videos" / "junk" / "c.mp4", 6, seed=3)
    make_video(root / "other" / "d.mp4", 6, seed=4)
    return root


def _paths(idx) -> list[str]:
    cat = Catalog(idx / "catalog.sqlite")
    try:
        return sorted(r.path for r in cat.files())
    finally:
        cat.close()


def _vectors(idx) -> int:
    with VideoIndex(str(idx)) as v:
        return v.store.ntotal


def refuse_models(monkeypatch):
    """From now on loading a model fails: taking videos out must not need one (nor its download)."""
    monkeypatch.setattr("index.build.load_model", lambda *a, **k: pytest.fail("a model was loaded"))


def test_a_folder_inside_an_indexed_one_is_taken_out_and_left_out_of_updates(tmp_path, test_model, monkeypatch):
    root = _tree(tmp_path)
    idx = tmp_path / "idx"
    build_index([str(root / "videos"), str(root / "other")], str(idx), model=test_model, workers=0, progress=False)
    assert len(_paths(idx)) == 4
    cat = Catalog(idx / "catalog.sqlite")
    junk_windows = [w.id for f in cat.files() if "/junk/" in f.path for w in cat.windows_of(f.id)]
    cat.close()
    before = _vectors(idx)
    assert junk_windows and all(thumbnail_path(idx, w).is_file() for w in junk_windows)

    with monkeypatch.context() as m:
        refuse_models(m)
        report = remove_from_index([str(root / "videos" / "junk") + "/"], str(idx))  # a trailing slash too
    assert (report.files, report.windows, report.roots) == (2, len(junk_windows), [])
    assert report.excluded == [str(root / "videos" / "junk")]
    assert "took out 2 videos" in report.summary() and "untouched" in report.summary()
    assert (root / "videos" / "junk" / "b.mp4").is_file()  # the files themselves stay
    assert _paths(idx) == [str(root / "other" / "d.mp4"), str(root / "videos" / "a.mp4")]
    assert _vectors(idx) == before - len(junk_windows)
    assert not any(thumbnail_path(idx, w).is_file() for w in junk_windows)
    st = index_status(str(idx))
    assert st["excluded"] == [str(root / "videos" / "junk")] and st["files"] == 2

    # an update (and a build naming the parent folder again) leaves it out; a new video elsewhere is added
    make_video(root / "videos" / "e.mp4", 6, seed=5)
    update = update_index(str(idx), model=test_model, workers=0, progress=False)
    assert (update.added, update.deleted) == (1, 0)
    build_index([str(root / "videos")], str(idx), model=test_model, workers=0, progress=False)
    assert not any("/junk/" in p for p in _paths(idx))
    with pytest.raises(VtrError, match="already left out"):
        remove_from_index([str(root / "videos" / "junk")], str(idx))

    # naming it in a build adds it back, and then it is no longer left out
    again = build_index([str(root / "videos" / "junk")], str(idx), model=test_model, workers=0, progress=False)
    assert again.added == 2 and index_status(str(idx))["excluded"] == []
    assert sum("/junk/" in p for p in _paths(idx)) == 2


def test_a_recorded_folder_and_a_single_video_are_taken_out(tmp_path, test_model, monkeypatch, capsys):
    root = _tree(tmp_path)
    idx = tmp_path / "idx"
    build_index([str(root / "videos"), str(root / "other")], str(idx), model=test_model, workers=0, progress=False)
    refuse_models(monkeypatch)
    assert remove_command([str(root / "other"), str(root / "videos" / "a.mp4")], index=str(idx)) == 0
    out = capsys.readouterr().out
    assert "took out 2 videos" in out and f"no longer scanned: {root / 'other'}" in out
    assert f"left out of updates from now on: {root / 'videos' / 'a.mp4'}" in out
    st = index_status(str(idx))
    assert st["roots"] == [str(root / "videos")] and st["excluded"] == [str(root / "videos" / "a.mp4")]
    assert _paths(idx) == sorted(str(root / "videos" / "junk" / n) for n in ("b.mp4", "c.mp4"))
    assert _vectors(idx) > 0
    # the folder's own videos are gone, and scanning it is no longer recorded: the file stays out too
    assert all(f.path != str(root / "videos" / "a.mp4") for f in scan_folders(
        [str(root / "videos")], exclude=st["excluded"]))


def test_a_path_the_index_does_not_hold_changes_nothing(tmp_path, test_model, monkeypatch):
    root = _tree(tmp_path)
    idx = tmp_path / "idx"
    build_index([str(root / "videos")], str(idx), model=test_model, workers=0, progress=False)
    refuse_models(monkeypatch)
    manifest = (idx / "manifest.json").read_text()
    with pytest.raises(VtrError, match="no video of .* is there or under it; its folders: .*Nothing was changed"):
        remove_from_index([str(root / "videos" / "junk"), str(root / "other")], str(idx))  # one good, one not
    assert len(_paths(idx)) == 3 and index_status(str(idx))["excluded"] == []
    assert json.loads((idx / "manifest.json").read_text()) == json.loads(manifest)
    with pytest.raises(VtrError, match="not an index folder"):
        remove_from_index([str(root)], str(tmp_path / "nothing"))
    with pytest.raises(VtrError, match="--index"):
        remove_command([str(root)])


def test_scans_leave_out_excluded_paths_but_never_a_root(tmp_path):
    root = _tree(tmp_path)
    junk = str(root / "videos" / "junk")
    names = [f.path for f in scan_folders([str(root / "videos")], exclude=[junk, str(root / "videos" / "a.mp4")])]
    assert names == []
    inside = [f.path for f in scan_folders([junk], exclude=[junk])]  # a root inside (or at) an excluded path
    assert inside == [junk + "/b.mp4", junk + "/c.mp4"]


def test_videos_indexed_one_by_one_are_roots_that_are_there_and_come_out_one_by_one(tmp_path, test_model, capsys):
    """A build may name videos rather than folders. `vtr index status` called such a root "not found" (it looked for
    a folder), and so did the app."""
    from index.commands import status_command

    root = _tree(tmp_path)
    a, d = str(root / "videos" / "a.mp4"), str(root / "other" / "d.mp4")
    idx = tmp_path / "idx"
    build_index([a, d], str(idx), model=test_model, workers=0, progress=False)
    assert index_status(str(idx))["missing_roots"] == []
    capsys.readouterr()
    assert status_command(index=str(idx)) == 0
    assert "not found" not in capsys.readouterr().out
    report = remove_from_index([a], str(idx))
    assert (report.files, report.roots, report.excluded) == (1, [a], [])
    assert _paths(idx) == [d] and index_status(str(idx))["roots"] == [d]
