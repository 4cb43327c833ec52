"""Keeping an index up to date while videos arrive: ``vtr index update --watch SECONDS``.

Each round is an update (:func:`index.build.build_index` over the recorded folders): new and changed videos are
embedded, deleted ones dropped, renamed ones kept. A round that finds nothing new loads no model and says nothing.
Searches that are open meanwhile (the app, a program holding a :class:`index.search.VideoIndex`) see each round's
changes at their next query.

A video still being written (a phone syncing, a copy from a card) is left for a later round: a new or changed file
is embedded once a scan finds it as the scan before found it (same size, same modification time), or once it was
last modified at least one round ago. Indexing half a file would record it as damaged, or embed it twice.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Callable

from index.build import BuildReport, IndexNotReady, build_index
from index.scan import ScannedFile
from vtr.errors import VtrError

logger = logging.getLogger(__name__)


class Settling:
    """Which new or changed files are complete enough to index (the ``settled`` predicate of
    :func:`index.build.build_index`): those whose size and modification time are what the previous round saw, or
    that were last modified at least ``quiet_s`` seconds ago. The two tests cover each other: a file copied with its
    old modification time kept is old but may still grow (the first test waits for it), and a share whose clock is
    ahead gives every file a recent time (the second would wait for ever)."""

    def __init__(self, quiet_s: float, clock: Callable[[], float] = time.time):
        self.quiet_s = float(quiet_s)
        self._clock = clock
        self._previous: dict[str, tuple[int, float]] = {}
        self._current: dict[str, tuple[int, float]] = {}

    def __call__(self, f: ScannedFile) -> bool:
        seen = (f.size, f.mtime)
        self._current[f.path] = seen
        return self._previous.get(f.path) == seen or self._clock() - f.mtime >= self.quiet_s

    def next_round(self) -> None:
        """What this round saw becomes what the next compares with."""
        self._previous, self._current = self._current, {}


def check_interval(every_s: float) -> None:
    """Raise VtrError unless ``every_s`` (``--watch``) is a number of seconds above 0."""
    if not every_s > 0:  # also NaN
        raise VtrError(f"--watch is the seconds between updates: more than 0, not {every_s}")


def _stamp() -> str:
    return datetime.now().strftime("%Y-%m-%d %H:%M:%S")


def watch_index(index: str, every_s: float, rounds: int | None = None, say: Callable[[str], None] = print,
                sleep: Callable[[float], None] = time.sleep, **build_options) -> list[BuildReport]:
    """Update ``index`` every ``every_s`` seconds (a round starts that long after the last one ended), ``rounds``
    times (None: until interrupted). ``say`` gets one line for each round that changed the index, and when the
    files waiting or the folders missing are not those of the round before; nothing otherwise. A round the index
    is not ready for (another build holds it; none of its folders is there) is said and tried again next round;
    any other error stops the watch. ``build_options`` go to :func:`index.build.build_index` (``retry_failed``,
    ``reembed`` and ``forget_missing`` to the first round only). Returns the reports of the rounds that ran."""
    check_interval(every_s)
    settling = Settling(quiet_s=every_s)
    reports: list[BuildReport] = []
    said: tuple = ((), (), None)  # (waiting, missing folders, not ready) last said
    n = 0
    while rounds is None or n < rounds:
        if n:
            sleep(every_s)
        n += 1
        try:
            report = build_index(None, index, settled=settling, **build_options)
            # the first round's work, not every round's: a drive unplugged later is not a folder to forget
            for once in ("retry_failed", "reembed", "forget_missing"):
                build_options.pop(once, None)
        except IndexNotReady as e:
            if said[2] != str(e):
                say(f"{_stamp()} {e}; trying again in {every_s:g} s")
            said = (said[0], said[1], str(e))
            continue
        finally:
            settling.next_round()
        reports.append(report)
        now = (tuple(report.waiting), tuple(report.missing_roots) + tuple(report.unreadable), None)
        if report.changed_index or now[:2] != said[:2]:
            say(f"{_stamp()} {report.summary()}")
            for line in report.detail_lines():
                say(line)
            for path in report.waiting:
                say(f"  still being written: {path}")
        said = now
    return reports
