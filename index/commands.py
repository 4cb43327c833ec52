"""The CLI verbs of the index (``vtr index build|update|status``, ``vtr search``): plain functions whose keyword
arguments are the flags (see :mod:`vtr.cli`)."""

from __future__ import annotations

import json as _json
import sys

from index.build import build_index, check_is_index, index_status, remove_from_index


def build_command(dirs: list[str], index: str = None, model: str = None, window_s: float = None,
                  stride_s: float = None, batch_size: int = None, workers: int = None,
                  timeout_s: float = 120.0, factory: str = None, reembed: bool = False, retry_failed: bool = False,
                  device: str = None, thumbnails: bool = True, precision: str = "auto",
                  window_policy: str = None) -> int:
    """Index the videos under one or more folders (create the index, or update it incrementally).

    dirs: folders (scanned recursively) or video files
    index: index folder to create or update
    model: weight name, architecture name or vtr model folder to embed with (default: the index's; for a new index
           videomamba_m16_25M)
    window_s: seconds per window (default: the index's; for a new index 8)
    stride_s: seconds between window starts (default: the index's; for a new index 4)
    batch_size: windows per encoder batch (default: 4 on a CPU, where larger batches are no faster and take more
                memory; 16 on a GPU)
    workers: decoding processes (default: 2, and more, up to the cores less one, while the encoder waits for them;
             0: decode in this process, no timeout)
    timeout_s: seconds one decode task (opening a file or decoding up to 16 windows) may take before the file fails
    factory: FAISS factory string instead of the automatic choice (e.g. "IVF4096,Flat", "HNSW32,Flat")
    reembed: re-embed every file when the model or sampling settings differ from the index's manifest
    retry_failed: try again the files that failed before even if they did not change
    device: torch device for the encoder (default: cuda if available, else cpu)
    thumbnails: write a JPEG thumbnail per window
    precision: encoder precision: fp32, bf16 or auto (bf16 on CUDA or a native-bf16 CPU where it measures
               faster, else fp32; fp32 for a model trained in fp32)
    window_policy: shots (windows inside shots, static ones reuse a vector; new index default) or stride (window_s windows every stride_s)
    """
    _check_flags(index, device)
    with _stopped_said(index):
        report = build_index(dirs, index, model=model, window_s=window_s, stride_s=stride_s, batch_size=batch_size,
                             workers=workers, timeout_s=timeout_s, factory=factory, reembed=reembed,
                             retry_failed=retry_failed, device=device, thumbnails=thumbnails, precision=precision,
                             window_policy=window_policy)
    _print_report(report)
    return 0


def update_command(index: str = None, model: str = None, batch_size: int = None, workers: int = None,
                   timeout_s: float = 120.0, reembed: bool = False, retry_failed: bool = False, device: str = None,
                   precision: str = "auto", forget_missing: bool = False, watch: float = None) -> int:
    """Re-scan an index's folders: embed new and changed files, drop deleted ones, recognise renamed ones.

    index: index folder
    model: model to embed with (default: the one in the index's manifest)
    batch_size: windows per encoder batch (default: 4 on a CPU, where larger batches are no faster and take more
                memory; 16 on a GPU)
    workers: decoding processes (default: 2, and more while the encoder waits for them)
    timeout_s: seconds one decode task may take before the file fails
    reembed: re-embed every file when the model differs from the manifest
    retry_failed: try again the files that failed before
    device: torch device for the encoder
    precision: encoder precision: fp32, bf16 or auto (bf16 on CUDA or a native-bf16 CPU where it measures
               faster, else fp32; fp32 for a model trained in fp32)
    forget_missing: drop the videos of recorded folders that are not there (by default they are kept: a drive
                    not mounted is not a deleted folder)
    watch: keep the index up to date: update again this many seconds after each update, until Ctrl-C; a video
           still being written waits for a later round, and an open app sees each round's changes
    """
    _check_flags(index, device)
    if watch is not None:
        from index.watch import check_interval, watch_index
        from vtr.cli import sigterm_as_interrupt

        check_interval(watch)
        check_is_index(index)
        print(f"watching the folders of {index}, updating {watch:g} s after each update; Ctrl-C stops", flush=True)
        try:
            with sigterm_as_interrupt():  # a service manager's stop ends it like Ctrl-C
                watch_index(index, watch, say=lambda line: print(_line(line), flush=True), model=model,
                            batch_size=batch_size, workers=workers, timeout_s=timeout_s, reembed=reembed,
                            retry_failed=retry_failed, device=device, precision=precision,
                            forget_missing=forget_missing)
        except KeyboardInterrupt:
            print(f"stopped watching {index}", file=sys.stderr)
            return 130
        return 0
    with _stopped_said(index):
        report = build_index(None, index, model=model, batch_size=batch_size, workers=workers,
                             timeout_s=timeout_s, reembed=reembed, retry_failed=retry_failed, device=device,
                             precision=precision, forget_missing=forget_missing)
    _print_report(report)
    return 0


def _stopped_said(index: str):
    """Ctrl-C or SIGTERM during a build or an update: the windows committed so far are kept (before: "interrupted"
    alone, and SIGTERM said nothing)."""
    from vtr.cli import interrupted_says

    return interrupted_says(f"the windows embedded so far are kept; `vtr index update --index {_line(index)}` goes "
                            "on from there")


def remove_command(paths: list[str], index: str = None) -> int:
    """Take videos out of an index (the files themselves are not touched): a recorded folder is no longer scanned,
    a folder or video inside one is left out of later updates until `vtr index build` names it again.

    paths: recorded folders, folders inside them, or videos
    index: index folder
    """
    _check_flags(index)
    print(remove_from_index(paths, index).summary())
    return 0


def status_command(index: str = None, json: bool = False) -> int:
    """Show an index: model and settings, counts, and the files that failed with their reasons.

    index: index folder
    json: print JSON instead of text
    """
    _check_flags(index)
    st = index_status(index)
    if json:
        print(_json.dumps(st, indent=2))
        return 0
    m = st["manifest"]
    print(f"index     {st['index']}")
    windows = (f"per window inside shots of at most {m['window_s']:g} s"
               if m.get("window_policy", "stride") == "shots" else
               f"per {m['window_s']:g} s window, stride {m['stride_s']:g} s")
    print(f"model     {m['model']} (sha256 of its tensors {m['weights_checksum'][:12]}), {m['num_frames']} frames at "
          f"{m['img_size']}px (antialias {'on' if m['antialias'] else 'off'}) {windows}, "
          f"{m['embed_dim']}-d vectors, FAISS {m.get('index_factory')}")
    missing = set(st["missing_roots"])
    print(f"folders   {', '.join(r + (' (not found)' if r in missing else '') for r in st['roots'])}")
    if missing:
        print("          a folder not found keeps its videos in the index; `vtr index update --forget-missing` "
              "drops them")
    if st["excluded"]:
        print(f"left out  {', '.join(st['excluded'])} (`vtr index remove`; `vtr index build PATH` adds one back)")
    from index.dates import dates_summary, local_time
    from index.scan import pictures_summary

    last = f"; the last on {local_time(st['last_indexed'])}" if st.get("last_indexed") else ""
    print(f"indexed   {st['files']} files, {st['hours']:.2f} h, {st['windows']} windows{last}")

    if dates_summary(st.get("recorded")):
        print(f"recorded  {dates_summary(st.get('recorded'))}")
    if pictures_summary(st.get("pictures")):
        print(f"pictures  {pictures_summary(st.get('pictures'))}")
    if st["pending"]:
        print(f"pending   {len(st['pending'])} files (interrupted build; run `vtr index update`)")
    if st["partial"]:
        print(f"partial   {len(st['partial'])} files indexed in part (damaged):")
        for path, reason in st["partial"]:
            print(f"  {_line(path)}: {reason}")
    print(f"failed    {len(st['failed'])} files")
    for path, reason in st["failed"]:
        print(f"  {_line(path)}: {reason}")
    if st["read_only"]:
        print(f"read-only {st['read_only']}: searches work; building, updating or removing needs write access")
    return 0


def search_command(query: str, index: str = None, k: int = 10, rerank: bool = False, json: bool = False,
                   path: str = None, min_duration: float = None, max_duration: float = None, model: str = None,
                   device: str = None, nprobe: int = None, precision: str = "auto", at: float = None,
                   since: str = None, until: str = None, export: str = None, export_as: str = "h264") -> int:
    """Find moments in an indexed collection: a text query, or the path of an image or a video clip. Each result:
    rank, score, span, the day its video was recorded (~: only the file's date), path.

    query: what happened, in words; or an image / video file to find similar moments
    at: with a video as the query: moments like the one at this second of it (a video of the index: from the
        index's own vectors, no model loaded, the moment itself left out; another video: its window around that
        second, encoded)
    index: index folder
    k: number of segments to show
    rerank: re-score the best windows with the matching (ITM) head (slower, text queries only)
    json: print JSON
    path: only files whose path matches this glob (e.g. "*/holidays/*")
    min_duration: only videos at least this many seconds long
    max_duration: only videos at most this many seconds long
    since: only videos recorded on or after this date: YYYY, YYYY-MM or YYYY-MM-DD (from the video's tags, else its
        name, else the file's time)
    until: only videos recorded on or before this date, the whole period included (2023-08: all of August)
    model: model to encode the query (default: the index's)
    device: torch device for the encoder
    nprobe: IVF cells to visit (approximate indexes; more is slower and more exact)
    precision: encoder precision for an example query: fp32, bf16 or auto (as for index build)
    export: also cut each moment found into an mp4 in this folder, named after its video and times (an existing
            file is never overwritten; a clip exported before is kept)
    export_as: h264 (a clip every player plays: the video's own H.264 up to 1080p, else transcoded to it) or
               recorded (the video's own packets whatever their codec, size and HDR, as an iPhone's 4K HEVC was
               recorded, where an MP4 carries them; else transcoded as for h264)
    """
    from index.dates import date_filters
    from index.search import VideoIndex

    _check_flags(index, device)
    if at is not None and rerank:
        from vtr.errors import VtrError

        raise VtrError("--rerank scores words against moments; --at finds moments like a moment: use one")
    filters = dict(path_glob=path, min_duration=min_duration, max_duration=max_duration,
                   **date_filters(since, until))  # checked before the index opens
    if export is not None or export_as != "h264":  # said before the model loads: a folder that cannot be made, ...
        from vtr.data.cut import EXPORT_AS, export_folder
        from vtr.errors import VtrError

        if export_as not in EXPORT_AS:  # ... a kind of export unknown, one without a folder
            raise VtrError(f"--export-as takes {' or '.join(EXPORT_AS)}, not {export_as!r}")
        if export is None:
            raise VtrError("--export-as says how --export cuts the moments: name their folder with --export DIR")
        export_folder(export)
    with VideoIndex(index, model=model, device=device, nprobe=nprobe, precision=precision) as idx:
        if at is not None:
            segments = idx.similar(query, at, k=k, **filters)
        else:
            segments = idx.search(query, k=k, rerank=rerank, progress=rerank, **filters)
        timing = {s.path: idx.catalog.timed_by_count(s.path) for s in segments} if export is not None else {}
    exported = None
    if export is not None:
        from vtr.data.cut import export_clips

        exported = export_clips([(s.path, s.start, s.end, s.recorded) for s in segments], export, progress=True,
                                timed_by_count=timing.get, export_as=export_as)
    failed = sum(1 for _, error in exported or [] if error)
    if json:
        rows = [s.to_dict() for s in segments]
        for row, (clip, error) in zip(rows, exported or []):
            if clip:
                row["exported"] = clip
            else:
                row["export_error"] = error
        print(_json.dumps(rows, indent=2))
        return 1 if failed else 0
    if not segments:
        print("no results")
    for rank, s in enumerate(segments, 1):
        copies = f"  (the same video also at: {', '.join(_line(c) for c in s.copies)})" if s.copies else ""
        print(f"{rank:3d}. {s.score:7.4f}  {_clock(s.start)}-{_clock(s.end)}  {_day(s)}  {_line(s.path)}{copies}")
    if exported is not None:
        print(f"exported {len(exported) - failed} of {len(exported)} moments to {_line(export)}")
        for rank, (clip, error) in enumerate(exported, 1):
            if error:
                print(f"  {rank}. not exported: {error}")
    return 1 if failed else 0


def _day(segment) -> str:
    """The day a result's video was recorded, 11 characters: ``~`` before a day that is only the file's time (a
    copy may have reset it), blanks when none is known yet."""
    if segment.recorded is None:
        return " " * 11
    from index.dates import local_day

    return ("~" if segment.recorded_by == "file" else " ") + local_day(segment.recorded)


def _print_report(report) -> None:
    print(report.summary())
    for line in report.detail_lines():
        print(_line(line))


def _check_flags(index, device: str | None = None):
    """The flags every index verb needs right, checked before anything is opened or loaded."""
    if not index:
        from vtr.errors import VtrError

        raise VtrError("name the index folder with --index IDX")
    if device is not None:
        from vtr.device import resolve_device

        resolve_device(device)


def _line(path: str) -> str:
    """``path`` on one line: a control character in a file name (a newline) written as its escape, so that each
    printed result stays one line (``--json`` prints names as they are)."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in str(path))


def _clock(seconds: float) -> str:
    m, s = divmod(float(seconds), 60)
    h, m = divmod(int(m), 60)
    return f"{h}:{m:02d}:{s:04.1f}" if h else f"{m}:{s:04.1f}"
