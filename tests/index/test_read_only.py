"""An index this process may not write (on a read-only share or mount, or built by another user) is searched with
its catalog opened read-only, and whatever would change it says so plainly instead of failing in sqlite.

Tests run as root, whom file modes do not stop, so "may not write" is ``os.access`` answering no for the index's
folder (what it answers on a read-only mount, as ``vtr search`` on a real one showed); sqlite's read-only and
immutable connections are real."""

import os
import sqlite3

import pytest

from index.build import build_index, index_status, remove_from_index
from index.catalog import Catalog
from index.search import VideoIndex
from tests.index.test_search import RED_VECTOR, red_collection  # noqa: F401 (a fixture)
from vtr.errors import VtrError


def deny_writes_under(monkeypatch, folder):
    real = os.access
    folder = os.path.abspath(folder)

    def access(path, mode, *args, **kwargs):
        if mode & os.W_OK and os.path.abspath(path).startswith(folder):
            return False
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)


def _files(folder) -> dict:
    return {p.relative_to(folder): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_read_only_index_is_searched_and_every_change_is_refused_plainly(red_collection, test_model,  # noqa: F811
                                                                           monkeypatch, capsys):
    root, idx = red_collection
    before = _files(idx)
    deny_writes_under(monkeypatch, idx)
    with VideoIndex(str(idx), model=test_model, gpu=False) as vi:
        assert vi.catalog.readonly
        top = vi.search(RED_VECTOR, k=2)
        assert (top[0].path, top[0].start, top[0].end) == (str(root / "beach.mp4"), 12.0, 20.0)
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            vi.catalog.set_meta("roots", [])
    st = index_status(str(idx))
    assert st["files"] == 3 and st["read_only"] == "this user may not write it"
    from index.commands import status_command

    status_command(str(idx))
    assert "read-only this user may not write it: searches work" in capsys.readouterr().out
    for change in (lambda: build_index(None, str(idx), model=test_model, workers=0, progress=False),
                   lambda: build_index([str(root)], str(idx), model=test_model, workers=0, progress=False),
                   lambda: remove_from_index([str(root / "city.mp4")], str(idx))):
        with pytest.raises(VtrError, match="cannot be changed .this user may not write it.: it can be searched"):
            change()
    # nothing was written, not even sqlite's -wal and -shm files (a read-only folder could not take them)
    assert _files(idx) == before
    monkeypatch.undo()
    assert index_status(str(idx))["read_only"] is None


def test_a_read_only_reader_follows_a_build_that_has_the_catalog_open(tmp_path, monkeypatch):
    path = tmp_path / "catalog.sqlite"
    writer = Catalog(path)
    with writer.transaction():
        writer.set_meta("roots", ["/a"])
    deny_writes_under(monkeypatch, tmp_path)
    reader = Catalog.for_reading(path)  # the writer's -shm is there: mode=ro, which sees its commits
    seen = reader.data_version()
    with writer.transaction():
        writer.set_meta("roots", ["/a", "/b"])
    assert reader.data_version() != seen and reader.get_meta("roots") == ["/a", "/b"]
    reader.close()
    writer.close()  # the last connection: sqlite removes -wal and -shm
    assert not (tmp_path / "catalog.sqlite-shm").exists()
    reader = Catalog.for_reading(path)  # nothing writes it: immutable
    assert reader.readonly and reader.get_meta("roots") == ["/a", "/b"]
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.set_meta("roots", [])
    reader.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog.sqlite"]
    with pytest.raises(FileNotFoundError):
        Catalog.for_reading(tmp_path / "nothing.sqlite")


def test_a_read_only_reader_opened_while_nothing_wrote_follows_a_later_build(red_collection, test_model,  # noqa: F811
                                                                          monkeypatch):
    """A reader that may not write the index, opened while no build had it open, reads it ``immutable`` (no lock,
    no -shm it could not create). A build begun later, by its owner (a cron update), changes the files: the reader
    opens the catalog again and searches the new video. Before, it never saw it, and read without locks a file that
    was being changed."""
    from tests.index.media import make_video
    from tests.index.test_search import RedDetector

    root, idx = red_collection
    deny_writes_under(monkeypatch, idx)
    with VideoIndex(str(idx), model=test_model, gpu=False) as vi:
        assert vi.catalog.readonly and vi.catalog._immutable is not None
        assert {s.path for s in vi.search(RED_VECTOR, k=20)} == {str(root / n) for n in ("beach.mp4", "city.mp4",
                                                                                         "long/park.mp4")}
        monkeypatch.undo()  # the owner's build (another process, in real use)
        make_video(root / "harbour.mp4", 10, seed=7, red=(0, 10))  # all red: the best match now
        monkeypatch.setattr(test_model, "encode_video", RedDetector(test_model))
        build_index(None, str(idx), model=test_model, workers=0, progress=False)
        top = vi.search(RED_VECTOR, k=20)
        assert top[0].path == str(root / "harbour.mp4") and len({s.path for s in top}) == 4


def test_a_read_only_catalog_of_an_older_vtr_reads_its_missing_tables_as_empty(tmp_path, monkeypatch):
    """A catalog from before recording dates and chunks: a writable open adds those tables; read-only, they are
    empty (in memory), so a date filter matches nothing, as it did before the index's update."""
    path = tmp_path / "catalog.sqlite"
    writer = Catalog(path)
    with writer.transaction():
        file_id = writer.upsert_pending("/v/a.mp4", 10, 1.0, "h")
        writer.conn.execute("UPDATE files SET status='ok', duration=8 WHERE id=?", (file_id,))
    writer.conn.executescript("DROP TABLE recorded; DROP TABLE chunks;")
    writer.close()
    deny_writes_under(monkeypatch, tmp_path)
    reader = Catalog.for_reading(path)
    summary = reader.summary()
    assert summary["files"] == 1 and summary["recorded"]["unknown"] == 1 and summary["recorded"]["first"] is None
    assert len(reader.window_ids_matching(since=0.0)) == 0
    assert reader.conn.execute("SELECT COUNT(*) FROM chunks").fetchone() == (0,)
    reader.close()
    # the file itself was not given the tables
    tables = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "recorded" not in tables and "chunks" not in tables
