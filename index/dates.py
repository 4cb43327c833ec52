"""When a video was recorded, for the date filters of a search ("last summer's videos").

From the first of these that says:

1. the tags FFmpeg reads, in this order, each in the container and then in its streams: Apple's
   ``com.apple.quicktime.creationdate`` (local time with its offset: iPhones), ``creation_time`` (MP4/MOV/MKV/WebM,
   in UTC), ``date_recorded``, ``date`` (AVI's ``ICRD``). QuickTime's and Unix's zero dates (files written without
   a clock) say nothing. A Dahua recorder's ``.dav`` has none, but dates each chunk (local time:
   :func:`recorder_date`);
2. the file's name, as phones and cameras write it: ``VID_20230714_153012.mp4``, ``PXL_20230714_153012345.mp4``,
   ``2023-07-14 15.30.12.mov``, ``WhatsApp Video 2023-07-14 at 15.30.12.mp4``, ``DJI_20230714153012_0001_D.MP4``
   (local time);
3. the file's modification time, which a copy may have reset.

``source`` says which (``"metadata"``, ``"name"``, ``"file"``): the app shows a date from the file's time as such.
Times are seconds since the epoch (UTC); a date without a time of day is taken at noon UTC, the same calendar day in
every time zone from UTC-11 to UTC+11.
"""

from __future__ import annotations

import logging
import os
import re
import time
from datetime import datetime, timedelta, timezone

logger = logging.getLogger(__name__)

#: container tags that say when a video was recorded, best first (FFmpeg's names; case does not matter)
DATE_TAGS = ("com.apple.quicktime.creationdate", "creation_time", "date_recorded", "date")
#: the earliest date believed: before it a tag holds a clock that was never set (1904 and 1970 are zero dates)
EARLIEST = datetime(1971, 1, 1, tzinfo=timezone.utc).timestamp()

_ISO = re.compile(r"^\s*(\d{4})[-:](\d{2})[-:](\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?)?"
                  r"\s*(Z|UTC|[+-]\d{2}:?\d{2})?\s*$", re.IGNORECASE)
# 20230714_153012, 20230714-153012345, 2023-07-14 15.30.12, 2023-07-14 at 15.30.12, 2023_07_14-15_30_12,
# DJI_20230714153012_0001
_NAME = re.compile(r"(?<!\d)((?:19|20)\d{2})[-_.]?(\d{2})[-_.]?(\d{2})(?:(?:[ _T-]|\s+at\s+)?(\d{2})[-_.:]?(\d{2})"
                   r"[-_.:]?(\d{2})(?:\d{1,3})?)?(?!\d)", re.IGNORECASE)  # (milliseconds: Pixel phones)


def parse_tag(value: str) -> float | None:
    """A date tag's value → seconds since the epoch, or None (unreadable, a zero date, or in the future)."""
    m = _ISO.match(str(value))
    if not m:
        return None
    year, month, day, hour, minute, second, zone = m.groups()
    try:
        if hour is None:  # a calendar day: noon UTC keeps the day in nearly every time zone
            stamp = datetime(int(year), int(month), int(day), 12, tzinfo=timezone.utc)
        else:
            stamp = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0))
            stamp = stamp.replace(tzinfo=_zone(zone))
    except ValueError:
        return None
    return _believable(stamp.timestamp())


def _zone(zone: str | None) -> timezone:
    if not zone or zone.upper() in ("Z", "UTC"):
        return timezone.utc  # creation_time is UTC by its definition (ISO/IEC 14496-12), with or without a Z
    sign = -1 if zone[0] == "-" else 1
    digits = zone[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


def date_from_name(name: str) -> float | None:
    """The local date and time a phone or camera wrote into a file's name, or None."""
    for m in _NAME.finditer(os.path.basename(name)):
        year, month, day, hour, minute, second = m.groups()
        try:
            if hour is None:
                stamp = datetime(int(year), int(month), int(day), 12, tzinfo=timezone.utc).timestamp()
            else:
                stamp = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second)).timestamp()
        except (ValueError, OverflowError):
            continue
        found = _believable(stamp)
        if found is not None:
            return found
    return None


def _believable(stamp: float) -> float | None:
    return stamp if EARLIEST <= stamp <= time.time() + 86400 else None


def recorded_at(path: str) -> tuple[float, str] | None:
    """``(seconds since the epoch, source)`` of when the video at ``path`` was recorded (see the module's order);
    None only when the file cannot be read at all."""
    try:
        import av

        from vtr.data.sources import file_input

        with av.open(file_input(path)) as container:  # a motion photo's video; a WebM's own tags (not its APNG)
            tags = [{k.lower(): v for k, v in container.metadata.items()}]
            tags += [{k.lower(): v for k, v in s.metadata.items()} for s in container.streams]
            recorder = recorder_date(container)
        for tag in DATE_TAGS:
            for found in tags:
                if tag in found and (stamp := parse_tag(found[tag])) is not None:
                    return stamp, "metadata"
        if recorder is not None:
            return recorder, "metadata"
    except Exception as e:  # noqa: BLE001 - a file PyAV cannot open still has a name and a time
        logger.debug("no tags from %s: %s", path, e)
    stamp = date_from_name(path)
    if stamp is not None:
        return stamp, "name"
    try:
        return os.path.getmtime(path), "file"
    except OSError:
        return None


def recorder_date(container) -> float | None:
    """When a Dahua recorder's export (a ``.dav``: FFmpeg's ``dhav`` format) started, from the date each of its
    chunks holds: the recorder's local time, which FFmpeg gives as milliseconds since the epoch as if it were UTC.
    None for another format, or a date not believed. An export's name often holds it too
    (``CH01_20240517140358_20240517150358.dav``), but not once the file is renamed (``front door.dav``)."""
    if container.format.name != "dhav":
        return None
    starts = [s.start_time * s.time_base for s in container.streams if s.start_time is not None and s.time_base]
    if not starts:
        return None
    try:
        local = datetime.fromtimestamp(float(min(starts)), timezone.utc).replace(tzinfo=None)
        return _believable(local.timestamp())
    except (ValueError, OverflowError, OSError):
        return None


def parse_day_bound(text: str, end: bool = False) -> float:
    """A filter's date, ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD`` (local time) → the first second of that period, or
    with ``end`` the first second after it (so ``--until 2023-08`` keeps all of August). ValueError otherwise."""
    m = re.fullmatch(r"\s*(\d{4})(?:[-/.](\d{1,2})(?:[-/.](\d{1,2}))?)?\s*", str(text))
    if not m:
        raise ValueError(f"{text!r} is not a date: write YYYY, YYYY-MM or YYYY-MM-DD")
    year, month, day = int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1)
    try:
        first = datetime(year, month, day)
        if end:
            if m.group(3):
                first += timedelta(days=1)
            elif m.group(2):
                first = datetime(year + month // 12, month % 12 + 1, 1)
            else:
                first = datetime(year + 1, 1, 1)
        return first.timestamp()
    except (ValueError, OverflowError):  # no such day, or beyond what the clock counts (year 0, 9999's end)
        raise ValueError(f"{text!r} is not a date: write YYYY, YYYY-MM or YYYY-MM-DD") from None


def date_filters(since: str | None, until: str | None, names=("--since", "--until")) -> dict:
    """Dates as a person gives them (YYYY, YYYY-MM, YYYY-MM-DD; empty: no limit) → a search's ``since`` and
    ``until`` (seconds since the epoch; ``until`` the end of its period). VtrError names the bad one (``names``)."""
    from vtr.errors import VtrError

    out = {}
    for key, value, name, end in (("since", since, names[0], False), ("until", until, names[1], True)):
        if value is not None and str(value).strip():
            try:
                out[key] = parse_day_bound(str(value), end=end)
            except ValueError as e:
                raise VtrError(f"{name}: {e}") from None
    return out


def local_day(stamp: float) -> str:
    """Seconds since the epoch → the day on this machine's calendar, ``YYYY-MM-DD``."""
    return datetime.fromtimestamp(float(stamp)).strftime("%Y-%m-%d")


def local_time(stamp: float) -> str:
    """Seconds since the epoch → this machine's date and time to the minute, ``YYYY-MM-DD HH:MM``."""
    return datetime.fromtimestamp(float(stamp)).strftime("%Y-%m-%d %H:%M")


def dates_summary(recorded: dict | None) -> str:
    """An index status's ``recorded`` counts in words: "2019-06-01 to 2023-08-01: 2 from their tags, 1 from their
    names, 1 from the file's time only" ("" while no date is known)."""
    if not recorded or recorded.get("first") is None:
        return ""
    known = [f"{recorded[k]} {what}" for k, what in (("metadata", "from their tags"), ("name", "from their names"),
                                                     ("file", "from the file's time only")) if recorded.get(k)]
    text = f"{local_day(recorded['first'])} to {local_day(recorded['last'])}: {', '.join(known)}"
    if recorded.get("unknown"):
        text += f"; {recorded['unknown']} not read yet (an update reads them)"
    return text


__all__ = ["DATE_TAGS", "parse_tag", "date_from_name", "recorded_at", "recorder_date", "parse_day_bound",
           "date_filters", "local_day", "dates_summary"]
