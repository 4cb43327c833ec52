"""The app's access to one index folder: search, status, build/update, previews. No Gradio here, and no retrieval
logic: searching and building are :mod:`index`'s; this module only serialises access to them and turns results
into things a page can show.

Threading: a Gradio server runs each request in a worker thread, but an opened :class:`index.VideoIndex` holds a
sqlite connection that may only be used by the thread that opened it. So every call on the opened index runs in
one dedicated thread (searches are serialised, which a single CPU/GPU encoder does anyway). Builds run in the
caller's thread with their own catalog connection; one at a time; the opened index is reloaded after each.
With :meth:`IndexService.watch`, a background thread updates the index every few seconds; the opened index
follows those updates (and any other process's) by itself, so it is not reloaded after them.
"""

from __future__ import annotations

import contextvars
import logging
import os
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from vtr.errors import VtrError
from vtr.precision import check_precision

logger = logging.getLogger(__name__)

MAX_FOLDER_CHOICES = 200
WATCH_STOP_S = 10.0  # how long closing the app waits for a watch update in progress
EXAMPLE_PREVIEW_S = 30.0  # seconds of an example clip the page shows, when it has to be cut for the browser
CONTEXT_S = 10.0  # seconds of the video shown before and after a moment, so it can be watched in context


@dataclass
class Moment:
    """One search result as the page shows it."""

    path: str
    start: float
    end: float
    score: float
    thumbnail: str | None
    copies: list = field(default_factory=list)  # other paths of the same video (see ``Segment.copies``)
    recorded: float | None = None  # when the video was recorded, seconds since the epoch (see ``index.dates``)
    recorded_by: str | None = None  # "metadata", "name" or "file": where that date came from

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def folder(self) -> str:
        return str(Path(self.path).parent)

    def to_dict(self) -> dict:
        # "video", not "path": gradio_client takes any dict with a "path" for a file to download.
        return {"video": self.path, "name": self.name, "folder": self.folder, "start": self.start, "end": self.end,
                "score": self.score, "copies": list(self.copies), "recorded": self.recorded,
                "recorded_by": self.recorded_by}


def clock(seconds: float) -> str:
    """``75.3`` → ``"1:15"``; hours when needed."""
    s = int(round(float(seconds)))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def recorded_text(recorded: float | None, recorded_by: str | None, day_only: bool = False) -> str:
    """When a video was recorded, as the page says it (local time), and how that is known; "" when not known.
    ``day_only``: the day alone, for a list of videos ("(file date)" when the video carries none)."""
    if recorded is None:
        return ""
    from datetime import datetime

    from index import local_day

    if day_only:
        return local_day(recorded) + (" (file date)" if recorded_by == "file" else "")
    when = datetime.fromtimestamp(float(recorded)).strftime("%Y-%m-%d %H:%M")
    if recorded_by == "file":
        return f"File date {when} (the video carries no recording date)"
    return f"Recorded {when}" + (" (from its name)" if recorded_by == "name" else "")


def folder_glob(folder: str) -> str:
    """A sqlite GLOB matching every file under ``folder`` (its ``*?[`` taken literally)."""
    escaped = "".join(f"[{c}]" if c in "*?[" else c for c in folder.rstrip(os.sep))
    return escaped + os.sep + "*"


def parse_seconds(value, what: str) -> float | None:
    """A duration typed in a box: empty → None (no limit); ``"90"``, ``"1.5"``, ``"1:30"`` → seconds."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        parts = [float(p) for p in text.split(":")]
    except ValueError:
        raise VtrError(f"{what}: “{text}” is not a number of seconds (e.g. 90 or 1:30).") from None
    if len(parts) > 3 or any(p < 0 for p in parts):
        raise VtrError(f"{what}: “{text}” is not a number of seconds (e.g. 90 or 1:30).")
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60 + p
    return seconds


def group_by_video(moments: list[Moment]) -> list[Moment]:
    """Order moments video by video (videos by their best score), best moment first within a video."""
    best: dict[str, float] = {}
    for m in moments:
        best[m.path] = max(best.get(m.path, float("-inf")), m.score)
    return sorted(moments, key=lambda m: (-best[m.path], m.path, -m.score))


def _filters(folder: str | None, min_duration: float | None, max_duration: float | None,
             since: float | None = None, until: float | None = None) -> dict:
    """A search's filters as :meth:`index.VideoIndex.search` takes them (the durations and dates checked)."""
    if min_duration is not None and max_duration is not None and min_duration > max_duration:
        raise VtrError("The minimum duration is longer than the maximum duration.")
    if since is not None and until is not None and since >= until:
        raise VtrError("The first recording date is after the last.")
    return dict(path_glob=folder_glob(typed_folder(folder)) if folder and folder.strip() else None,
                min_duration=min_duration, max_duration=max_duration, since=since, until=until)


def _moments(segments) -> list[Moment]:
    # Best first: grouping by video is a view (group_by_video), never a reason to rank a worse moment higher.
    return [Moment(s.path, float(s.start), float(s.end), float(s.score), s.thumbnail, list(s.copies), s.recorded,
                   s.recorded_by) for s in segments]


def typed_folder(text: str) -> str:
    """The absolute folder a person typed or pasted: ``~`` expanded, and the quotes or the ``file://`` URL that
    file managers copy a path as ("Copy as path" on Windows, Files and Finder on Linux and macOS) taken off."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1].strip()
    if text.startswith("file://"):
        from urllib.parse import unquote, urlparse

        text = unquote(urlparse(text).path)
    return os.path.abspath(os.path.expanduser(text))


class IndexService:
    """Search and maintain the index folder ``index`` (which may not exist yet).

    model: None (the index's own model), a registered name / vtr model folder, or a model object; also the model a
    first build embeds with (None there: :data:`index.embed.DEFAULT_MODEL`).
    cache_dir: where previews and fallback thumbnails go (default: a new temporary folder, removed by close()).
    build_options: keyword arguments for every build (see :func:`index.build_index`: workers, batch_size, ...).
    precision: video encoder precision of example queries and builds: fp32, bf16, auto/None (see vtr.precision).
    """

    def __init__(self, index: str, model=None, device: str | None = None, cache_dir: str | None = None,
                 build_options: dict | None = None, precision: str | None = None):
        self.index_dir = Path(os.path.abspath(os.path.expanduser(index)))
        self._model_spec = model
        self._device = device
        self._precision = check_precision(precision)  # a bad flag fails at start, not at the first build
        self._own_cache = cache_dir is None
        self.cache_dir = Path(cache_dir or tempfile.mkdtemp(prefix="vtr-app-"))
        self.preview_dir = self.cache_dir / "previews"
        self.thumbnail_dir = self.cache_dir / "thumbnails"
        for d in (self.preview_dir, self.thumbnail_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vtr-index")
        self._index = None  # index.VideoIndex, opened and used only in self._pool's thread
        self._build_lock = threading.Lock()
        self.build_options = dict(build_options or {})
        self.watching: float | None = None  # seconds between the watch's updates, while it runs
        self._stop_watch = threading.Event()
        self._watcher: threading.Thread | None = None

    # ------------------------------------------------------------------------------------------ lifecycle
    @property
    def index_thumbnails(self) -> Path:
        from index.layout import thumbnails_dir

        return thumbnails_dir(self.index_dir)

    def served_dirs(self) -> list[str]:
        """The only folders whose files the app hands to the browser (Gradio's ``allowed_paths``)."""
        return [str(self.index_thumbnails), str(self.cache_dir)]

    def exists(self) -> bool:
        from index.layout import is_index

        return is_index(self.index_dir)

    def _run(self, fn, *args, **kwargs):
        # In the caller's context: Gradio finds the progress bar of the event being handled through context
        # variables, so a tqdm in the index thread (a re-ranking) then moves the page's bar.
        return self._pool.submit(contextvars.copy_context().run, fn, *args, **kwargs).result()

    def _opened(self):
        """The opened VideoIndex (in the index thread), or a VtrError saying there is no index yet."""
        if self._index is None:
            if not self.exists():
                raise VtrError(f"No index yet at {self.index_dir}. Add a folder of videos in the Index tab.")
            from index.search import VideoIndex

            self._index = VideoIndex(str(self.index_dir), model=self._model_spec, device=self._device, gpu=None,
                                     precision=self._precision)
        return self._index

    def _close_index(self):
        if self._index is not None:
            self._index.close()
            self._index = None

    def reload(self) -> None:
        """Forget the opened index (after a build changed it); the next call reopens it."""
        self._run(self._close_index)

    def warm_up(self) -> None:
        """Open the index and load its model now, so the first search does not wait for them."""
        def load():
            self._opened().model  # noqa: B018 - loading is the point
        if self.exists():
            self._run(load)

    def close(self) -> None:
        self._stop_watch.set()
        if self._watcher is not None:
            # a round embedding a long video could hold the app's exit for minutes: its thread is a daemon, and
            # what it committed (chunk by chunk) is kept, the rest embedded by the next update
            self._watcher.join(timeout=WATCH_STOP_S)
            if self._watcher.is_alive():
                logger.warning("stopped during a watch update of %s: the next update finishes it", self.index_dir)
        self._run(self._close_index)
        self._pool.shutdown(wait=True)
        if self._own_cache:
            shutil.rmtree(self.cache_dir, ignore_errors=True)

    def can_rerank(self) -> bool:
        """Whether the index's model has a trained matching head (re-ranking is offered only then)."""
        if not self.exists():
            return False
        try:
            return bool(self._run(lambda: self._opened().can_rerank))
        except VtrError as e:
            logger.info("no re-ranking: %s", e)
            return False

    # --------------------------------------------------------------------------------------------- search
    def search(self, query: str = "", example: str | None = None, folder: str | None = None,
               min_duration: float | None = None, max_duration: float | None = None, rerank: bool = False,
               k: int = 24, since: float | None = None, until: float | None = None) -> list[Moment]:
        """Moments for a text ``query``, or for an ``example`` image/clip (a path the app received by upload).

        folder: only videos under this folder; min_duration/max_duration: only videos this long (seconds);
        since/until: only videos recorded at or after / before these times (seconds since the epoch);
        rerank: re-score text matches with the matching (ITM) head, with a progress bar (tqdm: the app's page
            shows it) over the windows it decodes and encodes again.
        """
        query = (query or "").strip()
        if not query and not example:
            raise VtrError("Type what you are looking for, or upload an example image or clip.")
        filters = _filters(folder, min_duration, max_duration, since, until)

        def run():
            idx = self._opened()
            if example:
                return idx.search(str(example), k=k, kind="example", **filters)
            # kind="text": typed words stay words, even when they happen to name a file on the server.
            return idx.search(query, k=k, kind="text", rerank=rerank, progress=rerank, **filters)

        return _moments(self._run(run))

    def similar(self, moment: Moment, folder: str | None = None, min_duration: float | None = None,
                max_duration: float | None = None, k: int = 24, since: float | None = None,
                until: float | None = None) -> list[Moment]:
        """Moments like ``moment`` (a result of a search), from the index's own vectors (no model is loaded); the
        moment itself is left out. Filters as for :meth:`search`."""
        filters = _filters(folder, min_duration, max_duration, since, until)
        return _moments(self._run(lambda: self._opened().similar(moment.path, moment.start, moment.end, k=k,
                                                                 **filters)))

    def query_notes(self, query: str) -> list[str]:
        """What a person should know about a text query before trusting its results (e.g. it is cut short)."""
        query = (query or "").strip()
        if not query or not self.exists():
            return []
        return self._run(lambda: self._opened().query_notes(query))

    def thumbnail_of(self, moment: Moment) -> str | None:
        """The index's thumbnail of the moment, or one cut from the video now (indexes built without them)."""
        if moment.thumbnail and Path(moment.thumbnail).is_file():
            return moment.thumbnail
        from app.media import make_thumbnail

        def render(path, seconds):
            return self._run(lambda: self._opened().thumbnail(path, seconds))
        try:
            return str(make_thumbnail(moment.path, (moment.start + moment.end) / 2, self.thumbnail_dir, render))
        except Exception as e:  # noqa: BLE001 - a missing thumbnail must not lose the result
            logger.info("no thumbnail for %s: %s", moment.path, e)
            return None

    def _timed_by_count(self, path: str) -> bool | None:
        """Whether the index found the video's timestamps jumping (:func:`index.timed_by_count`): a preview or an
        export then need not read every packet of a TV recording to tell. None where it does not know."""
        from index import timed_by_count

        return timed_by_count(self.index_dir, path)

    def _check_source(self, moment: Moment) -> None:
        if not Path(moment.path).is_file():
            raise VtrError(f"{moment.name} is gone (moved or deleted since it was indexed); update the index.")

    def example_clip(self, path: str, plays: frozenset = frozenset(), copy: bool = True) -> str:
        """An example clip as the page can play it: the file itself where every browser plays it
        (:func:`app.media.browser_plays`), else its first ``EXAMPLE_PREVIEW_S`` seconds as a moment's preview is made
        (:func:`app.media.moment_preview`: an iPhone's H.264 .MOV or an OBS .mkv copied into an MP4, and an MP4 whose
        sound is AC-3 or PCM with that sound encoded to AAC; a camcorder's .MTS, an .mpg, .avi, .wmv or an iPhone's
        HEVC .MOV cut to H.264; each showed an empty player, or a silent one; the search reads the whole clip all the
        same); the file itself when it cannot be read (the search says why). ``plays`` and ``copy`` as for
        :meth:`preview`: an iPhone's HEVC copied for a browser that said it plays HEVC, transcoded where ``copy`` is
        False."""
        from app.media import browser_plays, moment_preview

        if copy and browser_plays(path):
            return path
        try:
            return str(moment_preview(path, 0.0, EXAMPLE_PREVIEW_S, self.preview_dir, tail_s=0.0, plays=plays,
                                      copy=copy)[0])
        except Exception as e:  # noqa: BLE001 - the search by it says what is wrong with the file
            logger.debug("no preview of the example %s: %s", path, e)
            return path

    def preview(self, moment: Moment, context_s: float = CONTEXT_S, plays: frozenset = frozenset(),
                copy: bool = True) -> tuple[str, float]:
        """A browser-playable cut around the moment: ``context_s`` seconds before it to ``context_s`` after it.

        Returns ``(clip path, offset)``: the moment starts ``offset`` seconds into the clip (the page seeks there).
        The clip of a video whose codecs every browser plays, or the browser said it plays (``plays``:
        :data:`app.media.PLAYED_IF_SAID`), is its own packets from the keyframe before the cut, unless ``copy`` is
        False (:func:`app.media.moment_preview`).
        """
        from app.media import moment_preview

        self._check_source(moment)
        cut = max(0.0, moment.start - context_s)
        clip, begin = moment_preview(moment.path, cut, moment.end, self.preview_dir, tail_s=context_s,
                                     max_seconds=moment.end - cut + context_s,
                                     by_count=self._timed_by_count(moment.path), plays=plays, copy=copy)
        return str(clip), moment.start - begin

    def export(self, moment: Moment, start: float | None = None, end: float | None = None,
               export_as: str = "h264") -> str:
        """An mp4 of ``[start, end]`` seconds of the moment's video (default: the moment's span), named after the
        video and the times, dated when that moment was recorded (:func:`vtr.data.cut.export_clips`; ``export_as``:
        "h264", a clip every player plays, or "recorded", the video's own packets whatever their codec and size); in
        the app's cache (so the browser may download it)."""
        import hashlib

        from vtr.data.cut import export_clips

        self._check_source(moment)
        start = moment.start if start is None else float(start)
        end = moment.end if end is None else float(end)
        if start < 0 or end <= start:
            raise VtrError(f"The out point ({end:g} s) must come after the in point ({start:g} s).")
        # One folder per video (as it is now) and span: the file carries a readable name without clashing with
        # another export's, and exporting the same again gives the clip already cut.
        st = os.stat(moment.path)
        key = f"{os.path.abspath(moment.path)}|{st.st_size}|{st.st_mtime_ns}|{start:.3f}|{end:.3f}|{export_as}"
        folder = self.cache_dir / "exports" / hashlib.sha1(key.encode()).hexdigest()[:12]
        [(clip, error)] = export_clips([(moment.path, start, end, moment.recorded)], folder,
                                       timed_by_count=self._timed_by_count, export_as=export_as)
        if error:
            raise VtrError(error)
        return clip

    def export_all(self, moments: list[Moment], progress: bool = True,
                   export_as: str = "h264") -> tuple[str, list[str]]:
        """A zip of every moment's span cut into an mp4 (named as :meth:`export` names one, ``export_as`` as it
        takes it), for one download; and what could not be cut (a video gone since the search), said rather than
        fatal. In the app's cache. Raises VtrError when there is nothing to export or no moment could be cut."""
        import uuid
        import zipfile

        from vtr.data.cut import export_clips

        if not moments:
            raise VtrError("Search first: there are no moments to export.")
        folder = self.cache_dir / "exports" / f"all-{uuid.uuid4().hex[:12]}"
        done = export_clips([(m.path, m.start, m.end, m.recorded) for m in moments], folder, progress=progress,
                            timed_by_count=self._timed_by_count, export_as=export_as)
        clips = [Path(clip) for clip, _ in done if clip]
        errors: dict[str, int] = {}  # the same reason for each moment of a video gone: said once, counted
        for _, error in done:
            if error:
                errors[error] = errors.get(error, 0) + 1
        failed = [error if n == 1 else f"{error} ({n} moments)" for error, n in errors.items()]
        if not clips:
            raise VtrError("No moment could be cut: " + "; ".join(failed[:3]))
        archive = folder / f"{len(clips)} moments.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:  # mp4 is compressed already
            for clip in clips:
                z.write(clip, clip.name)
                clip.unlink()  # the zip holds it; the cache keeps one copy
        return str(archive), failed

    def overview(self, suggest: bool = True, status: dict | None = None) -> dict | None:
        """What the Search tab says is searchable: counts, and queries that fit this index (see
        :meth:`index.search.VideoIndex.suggest_queries`; ``suggest=False``: none, the model is not asked). None
        when there is no index yet. ``status``: :meth:`status`, when the caller has it already."""
        if not self.exists():
            return None
        st = status or self.status()
        counts = {"files": st["files"], "hours": st["hours"], "windows": st["windows"], "partial": len(st["partial"])}
        if not suggest:
            return {**counts, "suggestions": []}

        def suggestions():
            try:
                return self._opened().suggest_queries()
            except VtrError as e:
                logger.info("no query suggestions: %s", e)
                return []
        return {**counts, "suggestions": self._run(suggestions)}

    # ----------------------------------------------------------------------------------------- the index
    def status(self) -> dict | None:
        """:func:`index.index_status` of the folder, or None when there is no index yet. (Not the opened index's
        :meth:`~index.search.VideoIndex.status`: this one also answers during a first build without loading the
        vector store, which the build is still writing.)"""
        from index import index_status

        if not self.exists():
            return None
        return index_status(str(self.index_dir))

    def folders(self) -> list[str]:
        """Folders to filter by: the indexed roots, then every folder holding indexed videos."""
        if not self.exists():
            return []
        return self._run(lambda: self._opened().folders()[:MAX_FOLDER_CHOICES])

    def duration_of(self, path: str) -> float | None:
        """The indexed duration of ``path`` in seconds (None when it is not in the index)."""
        return self._run(lambda: self._opened().duration(path)) if self.exists() else None

    @property
    def building(self) -> bool:
        return self._build_lock.locked()

    def build(self, add_folder: str | None = None, progress: bool = True, **kwargs):
        """Add ``add_folder`` to the index (creating it), or re-scan the recorded folders when None.

        Returns :class:`index.build.BuildReport`. kwargs (over ``build_options``) go to :func:`index.build_index`.
        Raises VtrError when a build is already running, or for a folder that is not one.
        """
        from index import build_index, update_index

        if add_folder is not None:
            if not add_folder.strip():
                raise VtrError("Type the path of a folder of videos first.")
            folder = typed_folder(add_folder)
            if not os.path.isdir(folder):  # said as cleaned up: the quotes or URL it was pasted with are gone
                raise VtrError(f"{folder} is not a folder on this computer.")
        elif not self.exists():
            raise VtrError("There is no index yet: add a folder first.")
        if not self._build_lock.acquire(blocking=False):
            raise VtrError("An index build is already running; wait for it to finish.")
        kwargs = {**self.build_options, **kwargs}
        try:
            model = self._model_for_build()
            if model is not None:
                kwargs["model"] = model
            kwargs.setdefault("device", self._device)
            kwargs.setdefault("precision", self._precision)
            if add_folder is not None:
                report = build_index([folder], str(self.index_dir), progress=progress, **kwargs)
            else:
                report = update_index(str(self.index_dir), progress=progress, **kwargs)
        finally:
            self._build_lock.release()
            self.reload()
        return report

    def watch(self, every_s: float) -> None:
        """Update the index ``every_s`` seconds after each update, in a background thread, until :meth:`close`:
        videos that arrive in its folders become searchable (``vtr app --watch``). Rounds as
        ``vtr index update --watch`` (:func:`index.watch_index`): a video still being written waits for a later
        round, and a round with nothing new loads no model. A round is skipped while another build runs (the
        Index tab's, another process's); an error is logged once and the watch goes on."""
        from index import Settling, check_interval

        check_interval(every_s)
        if self.exists():  # a read-only index is refused now, not in a warning at each round
            from index import check_writable

            check_writable(self.index_dir)
        if self._watcher is not None:
            raise VtrError("the app is already watching its index")
        self.watching = float(every_s)
        settling = Settling(quiet_s=every_s)

        def rounds():
            said = None
            while not self._stop_watch.wait(self.watching):
                try:
                    report = self._watch_round(settling)
                    said = None
                except Exception as e:  # noqa: BLE001 - the app goes on serving; the next round tries again
                    if str(e) != said:
                        logger.warning("watching %s: %s", self.index_dir, e)
                    said = str(e)
                    continue
                finally:
                    settling.next_round()
                if report is not None and report.changed_index:
                    logger.info("%s", report.summary())

        self._watcher = threading.Thread(target=rounds, name="vtr-watch", daemon=True)
        self._watcher.start()

    def _watch_round(self, settling):
        """One update of the watch (None: no index yet, or a build of the Index tab runs)."""
        from index import update_index

        if not self.exists() or not self._build_lock.acquire(blocking=False):
            return None
        try:
            # The model by name: a round with nothing new loads none, and one that embeds loads it for itself
            # (the model searches use is the model the index was built with, checked).
            options = {**self.build_options, "device": self._device, "precision": self._precision,
                       "model": self._model_spec, "settled": settling}
            return update_index(str(self.index_dir), progress=False, **options)
        finally:
            self._build_lock.release()

    def remove(self, path: str):
        """Take ``path`` (a folder of the index, or a video) out of the index; the files stay on disk. Returns
        :class:`index.build.RemoveReport`. Raises VtrError while a build runs, or for a path the index does not
        hold."""
        from index import remove_from_index

        if not path or not str(path).strip():
            raise VtrError("Choose a folder to take out of the index first.")
        if not self.exists():
            raise VtrError("There is no index yet.")
        if not self._build_lock.acquire(blocking=False):
            raise VtrError("An index build is running; wait for it to finish.")
        try:
            return remove_from_index([typed_folder(str(path))], str(self.index_dir))
        finally:
            self._build_lock.release()
            self.reload()

    def _model_for_build(self):
        """The model searches use (already loaded; the build checks its weights against the index's manifest), else
        what the app was given."""
        if self.exists():
            try:
                return self._run(lambda: self._opened().model)
            except VtrError as e:
                logger.warning("building with %s: %s", self._model_spec, e)
        return self._model_spec
