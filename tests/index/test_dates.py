"""Recording dates: read from a video's tags, its name or its file; searched by ``since`` / ``until``."""

import os
import sqlite3
from datetime import datetime, timezone

import numpy as np
import pytest

from index.build import build_index
from index.dates import date_filters, date_from_name, parse_day_bound, parse_tag, recorded_at
from index.search import VideoIndex
from tests.index.media import make_video
from vtr.errors import VtrError


def utc(*args) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp()


def local(*args) -> float:
    return datetime(*args).timestamp()


@pytest.mark.parametrize("value, expected", [
    ("2023-07-14T15:30:12.000000Z", utc(2023, 7, 14, 15, 30, 12)),  # creation_time (MP4, MKV, WebM)
    ("2023-07-14T15:30:12+0200", utc(2023, 7, 14, 13, 30, 12)),  # Apple's creationdate: local, with its offset
    ("2023-07-14T15:30:12-05:00", utc(2023, 7, 14, 20, 30, 12)),
    ("2023-07-14 15:30:12", utc(2023, 7, 14, 15, 30, 12)),  # creation_time without a Z is still UTC
    ("2023:07:14 15:30:12", utc(2023, 7, 14, 15, 30, 12)),  # EXIF's form
    ("2017-01-01", utc(2017, 1, 1, 12)),  # AVI's ICRD: a day, kept at noon UTC
    ("1904-01-01T00:00:00Z", None), ("1970-01-01T00:00:00.000000Z", None),  # zero dates: no clock was set
    ("2099-01-01", None), ("2023-13-01", None), ("Mon Jul 14 2023", None), ("", None),
])
def test_tags_are_read_as_utc_or_with_their_offset(value, expected):
    assert parse_tag(value) == expected


@pytest.mark.parametrize("name, expected", [
    ("VID_20230714_153012.mp4", local(2023, 7, 14, 15, 30, 12)),  # Android
    ("PXL_20230714_153012345.mp4", local(2023, 7, 14, 15, 30, 12)),  # Pixel: milliseconds too
    ("2023-07-14 15.30.12.mov", local(2023, 7, 14, 15, 30, 12)),  # Dropbox's camera uploads
    ("WhatsApp Video 2023-07-14 at 15.30.12.mp4", local(2023, 7, 14, 15, 30, 12)),
    ("video-2021-05-03-12-30-45.mp4", local(2021, 5, 3, 12, 30, 45)),
    ("DJI_20230714153012_0001_D.MP4", local(2023, 7, 14, 15, 30, 12)),  # drones: no separator
    ("Screen Recording 2023-07-14 at 15.30.12.mov", local(2023, 7, 14, 15, 30, 12)),  # macOS
    ("2023-07-14 15-30-12.mkv", local(2023, 7, 14, 15, 30, 12)),  # OBS
    ("20230714.mp4", utc(2023, 7, 14, 12)),
    ("IMG_1234.MOV", None), ("GH010123.MP4", None), ("clip_123456789.mp4", None), ("trip 2019.mp4", None),
    ("20231399_999999.mp4", None), ("/photos/2023-07-14/IMG_1.mov", None),  # a folder's name is not the file's
])
def test_phones_and_cameras_names_give_their_local_time(name, expected):
    assert date_from_name(name) == expected


def test_a_video_s_date_comes_from_its_tags_then_its_name_then_its_file(tmp_path):
    tagged = make_video(tmp_path / "a.mp4", 1, tags={"creation_time": "2023-07-14T15:30:12.000000Z"})
    assert recorded_at(str(tagged)) == (utc(2023, 7, 14, 15, 30, 12), "metadata")
    iphone = make_video(tmp_path / "IMG_0001.mov", 1, tags={
        "com.apple.quicktime.creationdate": "2023-07-14T15:30:12+0200", "creation_time": "2023-07-14T13:30:12Z"})
    assert recorded_at(str(iphone)) == (utc(2023, 7, 14, 13, 30, 12), "metadata")
    assert recorded_at(str(make_video(tmp_path / "b.mkv", 1, tags={"creation_time": "2021-01-02T03:04:05Z"}))) == (
        utc(2021, 1, 2, 3, 4, 5), "metadata")
    assert recorded_at(str(make_video(tmp_path / "c.avi", 1, tags={"date": "2017-01-01"}))) == (
        utc(2017, 1, 1, 12), "metadata")
    named = make_video(tmp_path / "VID_20190304_101112.mp4", 1)  # no tags: the name
    assert recorded_at(str(named)) == (local(2019, 3, 4, 10, 11, 12), "name")
    plain = make_video(tmp_path / "holiday.mp4", 1, tags={"creation_time": "1970-01-01T00:00:00Z"})
    os.utime(plain, (utc(2020, 2, 2), utc(2020, 2, 2)))  # a zero date says nothing: the file's time
    assert recorded_at(str(plain)) == (utc(2020, 2, 2), "file")
    (tmp_path / "broken.mp4").write_bytes(b"not a video")  # unreadable: still a file with a time
    assert recorded_at(str(tmp_path / "broken.mp4"))[1] == "file"
    assert recorded_at(str(tmp_path / "gone.mp4")) is None


def test_a_dahua_recorder_s_export_is_dated_by_its_chunks_in_local_time(tmp_path, monkeypatch):
    """A Dahua NVR's or DVR's export (``.dav``) has no date tag, but dates each of its chunks with the recorder's local
    time; renamed (``front door.dav``), its name says nothing. Before, its date was the file's, the day of the
    copy."""
    import time

    from tests.videos import indexed_frames, write_dav

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        path = write_dav(tmp_path / "front door.dav", indexed_frames(10, 64, 96), sound=True)  # 2024-05-17 14:03:58
        assert recorded_at(str(path)) == (utc(2024, 5, 17, 18, 3, 58), "metadata")  # 14:03:58 in New York (EDT)
    finally:
        monkeypatch.undo()
        time.tzset()


def test_filter_dates_cover_whole_periods():
    assert parse_day_bound("2023") == local(2023, 1, 1)
    assert parse_day_bound("2023", end=True) == local(2024, 1, 1)
    assert parse_day_bound("2023-08", end=True) == local(2023, 9, 1)
    assert parse_day_bound("2023-12", end=True) == local(2024, 1, 1)
    assert parse_day_bound("2023/7/4") == local(2023, 7, 4)
    assert parse_day_bound("2023-08-31", end=True) == local(2023, 9, 1)
    for bad in ("2023-02-30", "July 2023", "23-07", "2023-7-4-1", "0000"):
        with pytest.raises(ValueError, match="YYYY, YYYY-MM or YYYY-MM-DD"):
            parse_day_bound(bad)
    with pytest.raises(ValueError, match="'9999' is not a date"):  # its end is past what datetime counts
        parse_day_bound("9999", end=True)
    assert date_filters(None, "") == {}
    with pytest.raises(VtrError, match="^Recorded until: 'soon' is not a date"):
        date_filters("2020", "soon", names=("Recorded from", "Recorded until"))


@pytest.fixture
def dated_collection(tmp_path, test_model):
    root = tmp_path / "videos"
    make_video(root / "2019.mp4", 6, seed=1, tags={"creation_time": "2019-06-01T10:00:00Z"})
    make_video(root / "2021.mp4", 6, seed=2, tags={"creation_time": "2021-08-31T22:00:00Z"})
    make_video(root / "VID_20230102_090000.mp4", 6, seed=3)
    idx = tmp_path / "idx"
    build_index([str(root)], str(idx), model=test_model, workers=0, progress=False, window_policy="stride")
    return root, idx


def test_searches_keep_the_videos_recorded_in_the_dates_asked(dated_collection, test_model):
    root, idx = dated_collection
    with VideoIndex(str(idx), model=test_model, gpu=False) as vi:
        q = vi.catalog.vectors_of(1)[0]  # any vector: the filters decide which videos come back

        def videos(**dates):
            return sorted({os.path.basename(s.path) for s in vi.search(q, k=20, **dates)})

        everything = videos()
        assert everything == ["2019.mp4", "2021.mp4", "VID_20230102_090000.mp4"]
        assert videos(since=parse_day_bound("2020")) == ["2021.mp4", "VID_20230102_090000.mp4"]
        assert videos(until=parse_day_bound("2021-08-30", end=True)) == ["2019.mp4"]
        assert videos(since=parse_day_bound("2021"), until=parse_day_bound("2022", end=True)) == ["2021.mp4"]
        assert videos(since=parse_day_bound("2024")) == []
        found = {os.path.basename(s.path): (s.recorded, s.recorded_by) for s in vi.search(q, k=20)}
        assert found["2019.mp4"] == (utc(2019, 6, 1, 10), "metadata")
        assert found["VID_20230102_090000.mp4"] == (local(2023, 1, 2, 9), "name")
        like = vi.similar(root / "2019.mp4", 1, k=20, since=parse_day_bound("2021"))
        assert like and {os.path.basename(s.path) for s in like} <= {"2021.mp4", "VID_20230102_090000.mp4"}
        with pytest.raises(VtrError, match="wrong way round"):
            vi.search(q, since=parse_day_bound("2023"), until=parse_day_bound("2020", end=True))


def test_an_index_without_dates_reads_them_at_its_next_update_without_a_model(dated_collection, monkeypatch):
    """An index built before dates were read (no `recorded` rows) gets them from a plain update, which loads no
    model; a renamed video's date is read again (its name may carry one)."""
    import index.build

    root, idx = dated_collection
    with sqlite3.connect(idx / "catalog.sqlite") as conn:
        conn.execute("DELETE FROM recorded")
    monkeypatch.setattr(index.build, "load_model", lambda *a, **k: pytest.fail("an update of dates loads no model"))
    with VideoIndex(str(idx), gpu=False) as vi:
        q = vi.catalog.vectors_of(1)[0]
        assert vi.search(q, k=20, since=parse_day_bound("2000")) == []  # not read yet: no date matches
    build_index(None, str(idx), workers=0, progress=False)
    os.rename(root / "2021.mp4", root / "VID_20240101_120000.mp4")  # its tags still win over its new name
    os.rename(root / "VID_20230102_090000.mp4", root / "VID_20220202_080000.mp4")
    build_index(None, str(idx), workers=0, progress=False)
    with VideoIndex(str(idx), gpu=False) as vi:
        dates = {os.path.basename(s.path): s.recorded for s in vi.search(q, k=20, since=parse_day_bound("2000"))}
    assert dates == {"2019.mp4": utc(2019, 6, 1, 10), "VID_20240101_120000.mp4": utc(2021, 8, 31, 22),
                     "VID_20220202_080000.mp4": local(2022, 2, 2, 8)}


def test_the_command_line_takes_dates_and_prints_them_in_json(dated_collection, capsys):
    import json

    from index.commands import search_command

    root, idx = dated_collection
    assert search_command(str(root / "2019.mp4"), index=str(idx), at=1, json=True, since="2021", until="2021") == 0
    printed = json.loads(capsys.readouterr().out)
    assert [os.path.basename(d["path"]) for d in printed] == ["2021.mp4"]
    assert (printed[0]["recorded"], printed[0]["recorded_by"]) == (utc(2021, 8, 31, 22), "metadata")
    with pytest.raises(VtrError, match="^--since: '2021-00' is not a date"):
        search_command("anything", index=str(idx), since="2021-00")
    from index.commands import status_command

    assert status_command(index=str(idx)) == 0
    first, last = (datetime.fromtimestamp(t).strftime("%Y-%m-%d") for t in (utc(2019, 6, 1, 10), local(2023, 1, 2, 9)))
    assert f"recorded  {first} to {last}: 2 from their tags, 1 from their names\n" in capsys.readouterr().out
    with sqlite3.connect(idx / "catalog.sqlite") as conn:  # as if its tags said nothing: the file's time, marked
        conn.execute("UPDATE recorded SET time=?, source='file' WHERE file_id=1", (utc(2020, 2, 2, 12),))
    assert search_command(str(root / "2021.mp4"), index=str(idx), at=1, k=5) == 0
    lines = capsys.readouterr().out.splitlines()
    file_day = datetime.fromtimestamp(utc(2020, 2, 2, 12)).strftime("%Y-%m-%d")
    assert any(line.endswith(f"  ~{file_day}  {root / '2019.mp4'}") for line in lines), lines
    name_day = datetime.fromtimestamp(local(2023, 1, 2, 9)).strftime("%Y-%m-%d")
    assert any(line.endswith(f"   {name_day}  {root / 'VID_20230102_090000.mp4'}") for line in lines), lines
