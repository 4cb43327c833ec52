"""What the browser is shown of a video: short preview clips and fallback thumbnails, cut with PyAV.

``gr.Video`` cannot start playback at a given second, and browsers cannot play many codecs people have on disk
(MPEG-4 part 2, HEVC in some browsers, WMV, ...). So a selected result is cut out of its video around the matched
second, into a cache folder the app owns: as its own packets, in an MP4 or a WebM, where browsers play its codecs
(:func:`moment_preview`), else transcoded to H.264/AAC in MP4 (``+faststart`` so it streams: :func:`make_preview`).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Callable

from vtr.atomic import atomic_path, write_bytes_atomic
from vtr.data.cut import HDR_TRANSFERS, copied_stream, cut_clip, video_kind
from vtr.errors import VtrError, disk_full

logger = logging.getLogger(__name__)

PREVIEW_MAX_WIDTH = 854  # 480p is plenty for a preview and keeps transcoding fast on a CPU
PREVIEW_MAX_RATE = 30  # a 60 fps video's preview at 30: a third less time to make it (bench/README.md)
PREVIEW_PRESET = "superfast"  # x264's: faster than an export's veryfast, in a larger file (served locally)
PREVIEW_TAIL_S = 2.0  # seconds kept after the matched span, so the moment does not end abruptly
PREVIEW_MAX_S = 60.0
CACHE_MAX_FILES = 256
#: The cache's size at most: a copied preview (:func:`moment_preview`) is the source's own bits (a phone's 1080p30 is
#: ~60 MB for 28 s, its 4K ~175 MB), where a transcoded one is a few MB
CACHE_MAX_BYTES = 2 << 30
#: Sources whose moments are previewed as their own packets (:func:`vtr.data.cut.copy_clip`, :func:`copy_plan`):
#: those in a container that indexes its packets (:data:`vtr.data.cut.COPIED_DEMUXERS`), up to 1080p (either way up)
#: and 40 Mbit/s (a phone's 1080p is 10-20)
COPY_MAX_PIXELS = 1920 * 1088
COPY_MAX_BITS = 40_000_000
#: ... and, for a browser whose machine decodes their kind of video in hardware at 4K60 (:data:`LARGE_ASKED`), up to
#: 4K either way up (DCI's 4096 wide too) and an action camera's 100 Mbit/s: a 28 s preview of such a video is up to
#: 350 MB in the cache
LARGE_MAX_PIXELS = 4096 * 2304
LARGE_MAX_BITS = 100_000_000


def _cache_name(path: str, start: float, end: float, suffix: str) -> str:
    st = os.stat(path)
    key = f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}|{start:.3f}|{end:.3f}"
    return hashlib.sha1(key.encode()).hexdigest()[:20] + suffix


def _prune(cache_dir: Path, keep: int = CACHE_MAX_FILES, max_bytes: int = CACHE_MAX_BYTES) -> None:
    """Keep the cache bounded: drop the least recently written files beyond ``keep`` files or ``max_bytes`` in all
    (the newest file is kept whatever its size)."""
    files = []
    for path in cache_dir.glob("*.*"):
        try:
            st = path.stat()
        except OSError:  # removed meanwhile (another page's prune)
            continue
        files.append((st.st_mtime, st.st_size, path))
    files.sort(key=lambda f: f[0], reverse=True)
    total = 0
    for i, (_, size, old) in enumerate(files):
        total += size
        if i >= keep or (i and total > max_bytes):
            try:
                old.unlink()
            except OSError:
                pass


def make_preview(path: str, start: float, end: float, cache_dir, tail_s: float = PREVIEW_TAIL_S,
                 max_seconds: float = PREVIEW_MAX_S, max_width: int = PREVIEW_MAX_WIDTH,
                 by_count: bool | None = None) -> Path:
    """Cut ``[start, end + tail_s]`` seconds (at most ``max_seconds``) of ``path`` into a browser-playable MP4.

    Video: H.264 yuv420p, at most ``max_width`` wide; audio (when the source has a decodable track): AAC stereo.
    Cached in ``cache_dir`` by (file, size, mtime, span). ``by_count``: whether the video's timestamps jump, where
    the index knows (:func:`vtr.data.cut.cut_clip`). Raises VtrError when nothing can be decoded there.
    """
    start = max(0.0, float(start))
    stop = min(float(end) + tail_s, start + max_seconds)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    try:
        out = cache_dir / _cache_name(path, start, stop, ".mp4")
    except OSError as e:
        raise VtrError(f"cannot open {path}: {e.strerror or e}") from e
    if out.is_file():
        return out
    try:
        with atomic_path(out) as tmp:
            cut_clip(path, start, stop, tmp, max_width, by_count=by_count, max_rate=PREVIEW_MAX_RATE,
                     preset=PREVIEW_PRESET)
    except VtrError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoder/encoder failure becomes one readable message
        if disk_full(e):
            raise  # the cache's disk is full, not the video at fault: the page says that
        raise VtrError(f"cannot make a preview of {Path(path).name}: {e}") from e
    _prune(cache_dir)
    return out


def moment_preview(path: str, start: float, end: float, cache_dir, tail_s: float = PREVIEW_TAIL_S,
                   max_seconds: float = PREVIEW_MAX_S, by_count: bool | None = None,
                   plays: frozenset = frozenset(), copy: bool = True) -> tuple[Path, float]:
    """A moment's preview, ``[start, end + tail_s]`` seconds of ``path`` (at most ``max_seconds``), and the second of
    the video it starts at. Where every browser plays the source's codecs (a phone's or a camera's H.264 with AAC sound
    in an MP4 or a MOV, a screen recorder's in Matroska, a download's VP9 with Opus in a WebM; or its pictures' alone,
    as a camera's H.264 with PCM sound, whose sound is then encoded to AAC; up to 1080p: :func:`copy_plan`), its own
    packets from the keyframe at or before ``start``, in an MP4 or a WebM (:func:`vtr.data.cut.copy_clip`):
    milliseconds, where transcoding a 1080p moment took seconds on two cores (bench/README.md), in the source's own
    quality. Otherwise, or where the packets cannot be taken as they are (a keyframe far before ``start``),
    :func:`make_preview`'s H.264 cut, which starts at ``start``. ``plays``: the kinds of video the browser said it
    plays besides (:data:`PLAYED_IF_SAID`: Safari's and Edge's HEVC, Chromium's AV1), copied too; ``copy=False``:
    transcoded whatever the source (the browser showed no pictures of its copy). Cached as :func:`make_preview`
    caches."""
    from vtr.data.cut import NotCopied, clip_start, copy_clip

    start = max(0.0, float(start))
    stop = min(float(end) + tail_s, start + max_seconds)
    container = copy_plan(path, plays) if copy and not by_count else None
    if container:
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        out = cache_dir / _cache_name(path, start, stop, f".copy.{container}")
        begin = clip_start(out) if out.is_file() else None
        if begin is not None:
            return out, begin
        try:
            with atomic_path(out) as tmp:
                begin = copy_clip(path, start, stop, tmp, container=container)
        except NotCopied as e:
            logger.debug("preview of %s transcoded: %s", path, e)
        except Exception as e:  # noqa: BLE001 - the transcode says what is wrong with the file, if anything is
            if disk_full(e):
                raise
            logger.info("preview of %s not copied: %s", path, e)
        else:
            _prune(cache_dir)
            return out, begin
    return make_preview(path, start, end, cache_dir, tail_s, max_seconds, by_count=by_count), start


#: What Chromium, Firefox and Safari all play, by file type (the extension decides the type the browser is told):
#: MP4 with H.264 or VP9, and WebM with VP8 or VP9, each in 8-bit 4:2:0 (:func:`vtr.data.cut.video_kind`). Not
#: Matroska (.mkv) nor QuickTime (.mov), which some browsers refuse whatever their codec; not AV1, which Safari plays
#: only where the device decodes it in hardware (not on a Mac before the M3), so an AV1 example is cut to H.264 as the
#: others are. Each type is ``(container, kinds)``: the
#: container must be the one the name says (one of FFmpeg's names for the demuxer that reads it), as a file's name can
#: say another than it holds and players, reading the bytes, do not mind; a recorder's MPEG-PS or MPEG-TS named
#: ``.mp4`` (Hikvision's exports, stream grabbers'), or a raw H.264 stream so named (some DVRs'), each with H.264
#: inside, was given to the page as it was, and its player stayed empty.
BROWSER_PLAYS = {".mp4": ("mp4", frozenset({"h264", "vp9"})), ".m4v": ("mp4", frozenset({"h264", "vp9"})),
                 ".webm": ("webm", frozenset({"vp8", "vp9"}))}


#: The kinds of video (:func:`vtr.data.cut.video_kind`: codec and bit depth) every browser plays, in 8-bit 4:2:0 (in
#: the containers :data:`BROWSER_PLAYS` pairs them with)
BROWSER_KINDS = frozenset().union(*(kinds for _, kinds in BROWSER_PLAYS.values()))
#: The kinds of video some browsers play and others do not, each with the codec string (RFC 6381, at 1080p60's
#: level) the page asks its browser about in an MP4 with AAC (``canPlayType``, answered "probably" or not from what
#: the browser, and for HEVC the machine's hardware, decodes): a moment of such a video is copied for a browser that
#: said it plays it (:func:`copy_plan`), transcoded for the others. HEVC (an iPhone's "High Efficiency", a drone's, an
#: action camera's) in Safari, and in Chrome and Edge where the GPU decodes it; AV1 in Chromium and Firefox; 10-bit
#: H.264 (a camera's High 10) in Chromium. A browser that said so and still shows no pictures is given the transcode
#: (``app.ui``: the page tells the app).
PLAYED_IF_SAID = {"hevc": "hvc1.1.6.L123.B0", "hevc.10": "hvc1.2.4.L123.B0", "av1": "av01.0.09M.08",
                  "av1.10": "av01.0.09M.10", "h264.10": "avc1.6E0029"}


#: The kinds of video the page asks about at 4K60 (``navigator.mediaCapabilities.decodingInfo`` for a file of 3840×2160
#: at 60 frames and 100 Mbit/s a second, each with its codec string at 4K60's level), and says it plays large (its
#: kind followed by :data:`LARGE`) where the answer is "supported" and "power efficient": decoded by the machine's
#: GPU, which keeps up. A moment of a video larger than :data:`COPY_MAX_PIXELS` or :data:`COPY_MAX_BITS` (a phone's
#: 4K, an action camera's bitrate) is copied for such a browser only (:func:`copy_plan`), and cut to 854 wide for the
#: others. Smoothness is not asked: a browser that decodes in software answers "smooth" whatever the machine (this
#: machine's Chromium did for 4K60 on two cores, which is why 4K previews are transcoded).
LARGE_ASKED = {"h264": "avc1.640034", "vp9": "vp09.00.51.08", "hevc": "hvc1.1.6.L156.B0",
               "hevc.10": "hvc1.2.4.L156.B0", "av1": "av01.0.13M.08", "av1.10": "av01.0.13M.10"}
LARGE = "@4k"
#: The 10-bit kinds HDR video comes in (an iPhone's HEVC in HLG, an Android phone's HEVC in HDR10, a YouTube
#: download's VP9 or AV1 in PQ), each with its codec string at 1080p60's level. For each transfer
#: (:data:`vtr.data.cut.HDR_TRANSFERS`) the page asks ``mediaCapabilities.decodingInfo`` whether its browser decodes
#: and shows that kind in that HDR (the transfer and BT.2020's gamut; the browser tone-maps it for an SDR screen, as
#: Safari and Chrome do), and says "hevc.10+hlg" where it does; at 4K60 too, for the kinds of :data:`LARGE_ASKED`
#: ("hevc.10+hlg@4k", where the machine decodes it in hardware). A browser that answers without weighing the transfer
#: (one that does not know the question's ``transferFunction``) is asked no HDR question.
HDR_ASKED = {"hevc.10": "hvc1.2.4.L123.B0", "av1.10": "av01.0.09M.10", "vp9.10": "vp09.02.41.10"}


def _media_questions() -> list[dict]:
    """What the page asks ``mediaCapabilities.decodingInfo`` (``app.ui.PLAYS_JS``): for each word it says when the
    answer is "supported" (and "power efficient" where ``efficient``), a file of ``codec`` in an MP4 at ``width`` ×
    ``height``, ``framerate`` and ``bitrate``, in the HDR ``transfer`` (None: SDR)."""
    def asked(word, codec, large, transfer=None):
        return {"word": word, "codec": codec, "width": 3840 if large else 1920, "height": 2160 if large else 1080,
                "bitrate": LARGE_MAX_BITS if large else COPY_MAX_BITS, "framerate": 60, "transfer": transfer,
                "efficient": large}

    questions = [asked(kind + LARGE, codec, True) for kind, codec in LARGE_ASKED.items()]
    for kind, codec in HDR_ASKED.items():
        for suffix in HDR_TRANSFERS.values():
            questions.append(asked(kind + suffix, codec, False, suffix.lstrip("+")))
            if kind in LARGE_ASKED:
                questions.append(asked(kind + suffix + LARGE, LARGE_ASKED[kind], True, suffix.lstrip("+")))
    return questions


#: What the page asks ``mediaCapabilities`` (:func:`_media_questions`)
MEDIA_ASKED = _media_questions()


def said_plays(words: str | None) -> frozenset:
    """The kinds of video in the page's word for what its browser plays (names separated by spaces): those of
    :data:`PLAYED_IF_SAID`, and those it asks ``mediaCapabilities`` about (:data:`MEDIA_ASKED`: "h264@4k",
    "hevc.10+hlg"); other words are ignored."""
    known = PLAYED_IF_SAID.keys() | {question["word"] for question in MEDIA_ASKED}
    return frozenset(str(words or "").split()) & known


def _size_word(container, stream, path) -> str | None:
    """What the page's word for its browser adds to the kind of the video ``stream`` of the opened ``container``
    (read from ``path``) by its size: nothing up to :data:`COPY_MAX_PIXELS` a frame and :data:`COPY_MAX_BITS` a second
    (a file's size over its duration where the container gives no rate), :data:`LARGE` up to :data:`LARGE_MAX_PIXELS`
    and :data:`LARGE_MAX_BITS`; None for a larger video, never copied."""
    import av

    cc = stream.codec_context
    seconds = float(container.duration or 0) / av.time_base
    bits = container.bit_rate or (os.path.getsize(path) * 8 / seconds if seconds > 0 else 0)
    if cc.width * cc.height <= COPY_MAX_PIXELS and bits <= COPY_MAX_BITS:
        return ""
    return LARGE if cc.width * cc.height <= LARGE_MAX_PIXELS and bits <= LARGE_MAX_BITS else None


def kind_of(path: str) -> str | None:
    """What the page's word for its browser calls the video at ``path``: its kind (:func:`vtr.data.cut.video_kind`),
    followed by :data:`LARGE` where it is over 1080p's limits (:func:`_size_word`); None where it cannot be read or is
    never copied."""
    import av

    from vtr.data.video import main_video_stream

    try:
        with av.open(str(path)) as container:
            stream = main_video_stream(container)
            kind = video_kind(stream) if stream is not None else None
            size = _size_word(container, stream, path) if kind else None
            return kind + size if size is not None else None
    except Exception:  # noqa: BLE001 - unreadable: no kind
        return None


def is_copied(clip) -> bool:
    """Whether the preview at ``clip`` (:func:`moment_preview`) is its source's own packets, not a transcode."""
    return ".copy." in Path(clip).name


def _browser_stream(container, kinds: frozenset = BROWSER_KINDS):
    """The main video stream of the opened ``container`` where a browser that plays the kinds of video ``kinds``
    (:func:`vtr.data.cut.video_kind`: not HDR, shown washed out where the model sees it tone-mapped, as none of
    :data:`BROWSER_KINDS` is) shows it as players do: not interlaced, combed; else None."""
    from vtr.data.video import main_video_stream, stream_flags

    stream = main_video_stream(container)
    if stream is None or stream_flags(stream)[1] or video_kind(stream) not in kinds:
        return None
    return stream


def browser_plays(path: str) -> bool:
    """Whether every browser shows the video at ``path`` as players do (:data:`BROWSER_PLAYS`: a codec they play, in
    the container its name says; see :func:`_browser_stream`) and plays its sound (in a codec every browser plays in
    that container: :data:`vtr.data.cut.COPY_CONTAINERS`; an MP4's AC-3 played silent in Chromium, and its PCM, Opus
    or FLAC, which Chromium plays, not in every browser). False when it cannot be read."""
    import av

    from vtr.data.cut import sound_copied
    from vtr.data.video import main_sound_stream

    played = BROWSER_PLAYS.get(os.path.splitext(str(path))[1].lower())
    if not played:
        return False
    demuxer, kinds = played
    try:
        with av.open(str(path)) as container:
            stream = _browser_stream(container, kinds)
            if demuxer not in container.format.name.split(",") or stream is None:
                return False
            sound = main_sound_stream(container, stream)
            sound = sound.codec_context.name if sound is not None else None
            return sound_copied(demuxer, sound)  # demuxer: "mp4" or "webm", COPY_CONTAINERS' names
    except Exception:  # noqa: BLE001 - unreadable: not playable either
        return False


def copy_plan(path: str, plays: frozenset = frozenset()) -> str | None:
    """The container (``"mp4"`` or ``"webm"``) a moment of the video at ``path`` is previewed in as its own packets
    (:func:`moment_preview`), None where it is transcoded instead. Copied: a video whose pictures every browser
    plays (:data:`BROWSER_KINDS`) or the browser said it plays (``plays``: :data:`PLAYED_IF_SAID`; an HDR kind where
    it said it shows that HDR, :data:`HDR_ASKED`), as :func:`vtr.data.cut.copied_stream` takes them (from a
    container that indexes its packets, square pixels, not interlaced), with sound as
    :func:`vtr.data.cut.copy_container` pairs it (H.264, VP9, HEVC or AV1 with AAC or MP3 into an MP4, VP8 or VP9
    with Opus or Vorbis into a WebM; other sound encoded to AAC in an MP4), of at most :data:`COPY_MAX_PIXELS` a
    frame and :data:`COPY_MAX_BITS` a second. A 4K or camera-bitrate video (up to :data:`LARGE_MAX_PIXELS` and
    :data:`LARGE_MAX_BITS`) is copied for a browser that decodes its kind in hardware (its kind followed by
    :data:`LARGE` in ``plays``: :data:`LARGE_ASKED`), and cut to 854 wide for the others: a two-core machine's
    browser plays that smoothly, where it may not decode the source itself in time. An iPhone's H.264 ``.MOV`` (its
    "Most Compatible" setting) or an OBS recording's Matroska is copied into an MP4, which every browser plays where
    some refuse the MOV or the MKV itself."""
    import av

    from vtr.data.cut import copy_container
    from vtr.data.video import codec_name, main_sound_stream

    try:
        with av.open(str(path)) as container:
            stream = copied_stream(container, BROWSER_KINDS | plays)
            size = _size_word(container, stream, path) if stream is not None else None
            if size is None or (size and video_kind(stream) + size not in plays):
                return None
            sound = main_sound_stream(container, stream)
            return copy_container(codec_name(stream), sound.codec_context.name if sound is not None else None)
    except Exception:  # noqa: BLE001 - unreadable: the transcode says what is wrong
        return None


def make_thumbnail(path: str, seconds: float, cache_dir, render: Callable[[str, float], bytes]) -> Path:
    """A cached JPEG of ``path`` at ``seconds`` (for indexes built without thumbnails); ``render(path, seconds)``
    makes the JPEG bytes (:meth:`index.search.VideoIndex.thumbnail`) when the cache does not hold it yet."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    out = cache_dir / _cache_name(path, seconds, seconds, ".jpg")
    if not out.is_file():
        write_bytes_atomic(out, render(path, seconds))
        _prune(cache_dir)
    return out
