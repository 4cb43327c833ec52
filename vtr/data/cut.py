"""Cutting a span of a video into a playable MP4 (H.264/AAC, ``+faststart`` so it streams), with PyAV: the app's
previews and exports, and ``vtr search --export``. Transcoded (:func:`cut_clip`), or, where players play the
source's codecs, its own packets (:func:`copy_clip`: a preview from the keyframe before, an export shown exactly
through its edit list). Seconds count from the video's first frame, as the index's windows do, also for streams that
start late (MPEG-TS, camcorders' ``.mts``).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from vtr.data.colors import BT709, RGB_MATRIX, SMPTE170M, UNSPECIFIED, guessed_matrix, said_matrix
from vtr.data.hdr import HLG, PQ, is_hdr
from vtr.data.image import format_has_alpha, has_alpha, shown_rgb
from vtr.data.sources import ffmpeg_input
from vtr.errors import VtrError, disk_full

if TYPE_CHECKING:
    from vtr.data.video import CountTable

logger = logging.getLogger(__name__)

AUDIO_RATE = 48000
#: Audio packets in a row the decoder may refuse before the track counts as broken (and the clip is cut without
#: sound): a seek in an MPEG program stream (a DVD's .VOB, an .mpg, a camcorder's .MOD) lands inside an AC-3 or MP2
#: frame, and the first one to three packets after it do not decode.
AUDIO_BAD_PACKETS = 32
EXPORT_MAX_WIDTH = 1920  # an exported moment keeps up to 1080p's width
EXPORT_PRESET = "veryfast"  # x264's: an exported clip is kept, so its size counts


def export_name(path: str, start: float, end: float) -> str:
    """``/v/Beach day.mov, 64.2, 72`` → ``Beach day 1m04s-1m12s.mp4`` (a file name people recognise)."""
    def stamp(t):
        s = int(t + 0.5)  # half up: 1.5 s reads as 0m02s, 4.5 s as 0m05s
        h, rest = divmod(s, 3600)
        m, s = divmod(rest, 60)
        return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"
    stem = "".join(c if c.isprintable() and c not in '/\\:*?"<>|' else "_" for c in Path(path).stem)[:80] or "moment"
    return f"{stem} {stamp(start)}-{stamp(end)}.mp4"


def cut_clip(path: str, start: float, stop: float, out_path: Path, max_width: int = EXPORT_MAX_WIDTH,
             comment: str | None = None, created: float | None = None, by_count: bool | None = None,
             max_rate: float | None = None, preset: str = EXPORT_PRESET) -> None:
    """Write ``[start, stop)`` seconds of ``path`` (seconds from its first frame, as the index counts them) to
    ``out_path``: H.264 yuv420p (crf 23) at most ``max_width`` wide, non-square pixels squared, a display rotation
    kept; the sound as AAC stereo when the source has a track that decodes (a broken one costs the sound, not the
    picture). ``comment``: the MP4's comment tag; ``created``: its ``creation_time`` (seconds since the epoch), when
    the clip was recorded. ``by_count``: whether the video's frames are timed by count (its timestamps jump, or a raw
    stream has none), where that is known (an index records it: :meth:`index.catalog.Catalog.timed_by_count`);
    None: found out, which reads every packet of an MPEG-TS/PS file or a raw stream
    (:func:`~vtr.data.video.discontinuous`). ``max_rate``: at most that many frames a second (the
    app's previews: 30), the frames between left out; None: the source's rate. Raises VtrError when no frame lies in
    the span or the video has no video stream. ``preset``: x264's (the app's previews: ``superfast``, faster than
    ``veryfast``, in a larger file)."""
    import av

    with av.open(ffmpeg_input(path)) as src:
        has_audio = bool(src.streams.audio)
    rotation, origin, by_count = _rotation_and_origin(path, by_count)  # once: the retry without sound reuses them
    tags = clip_tags(comment, created)
    try:
        _transcode_once(path, start, stop, out_path, max_width, rotation, origin, with_audio=has_audio, tags=tags,
                        by_count=by_count, max_rate=max_rate, preset=preset)
    except VtrError:
        raise
    except Exception as e:  # noqa: BLE001 - a broken audio track must not cost the picture
        if not has_audio:
            raise
        logger.info("preview of %s without sound: %s", path, e)
        _transcode_once(path, start, stop, out_path, max_width, rotation, origin, with_audio=False, tags=tags,
                        by_count=by_count, max_rate=max_rate, preset=preset)


def clip_tags(comment: str | None = None, created: float | None = None) -> dict:
    """A clip's metadata: its ``comment``, and its ``creation_time`` (UTC, as MP4 keeps it) from ``created``, seconds
    since the epoch (None: not known)."""
    tags = {"comment": comment} if comment else {}
    if created is not None:
        tags["creation_time"] = datetime.fromtimestamp(float(created), timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return tags


#: The formats whose moments are cut as their own packets (:func:`copy_clip`: the app's previews, exports): those
#: FFmpeg reads from a container that indexes its packets by time (MP4, MOV, 3GP, Matroska, WebM: FFmpeg's demuxer
#: names)
COPIED_DEMUXERS = frozenset({"mov", "mp4", "matroska", "webm"})
#: The pictures a clip may carry as its source's own packets, by their pixel format, and what it adds to their
#: codec's name in the video's kind (:func:`video_kind`): 4:2:0, as players decode it, in 8 bits (nothing: "h264",
#: "hevc") or 10 (".10": "hevc.10", an iPhone's SDR HEVC in 10 bits, a camera's High 10 H.264). A camera's 4:2:2 or
#: a screen capture's 4:4:4 is not: its moments are cut to H.264 as other videos are.
KIND_FORMATS = {"yuv420p": "", "yuvj420p": "", "yuv420p10le": ".10"}
#: What an HDR video's transfer adds to its kind (:func:`video_kind`): "+hlg" (an iPhone's HDR, Dolby Vision 8.4's
#: base, broadcast HDR), "+pq" (HDR10, HDR10+, a YouTube download's HDR). A player that shows SDR alone shows either
#: washed out, so such a video is copied only for a player that said it shows that HDR kind.
HDR_TRANSFERS = {HLG: "+hlg", PQ: "+pq"}
#: The kind of video (:func:`video_kind`) every player plays: H.264 in 8-bit 4:2:0 (the Main and High profiles)
PLAYED_EVERYWHERE = "h264"


def video_kind(stream) -> str | None:
    """What a player must decode and show for the PyAV video ``stream``'s own packets: its codec's name, with ".10"
    for 10-bit pictures (:data:`KIND_FORMATS`: "h264", "h264.10", "hevc", "av1.10") and its transfer for HDR pictures
    (:data:`HDR_TRANSFERS`: "hevc.10+hlg", an iPhone's default); None where its pictures are not 4:2:0 (a camera's
    4:2:2), which players may not decode."""
    from vtr.data.video import codec_name

    cc = stream.codec_context
    suffix = KIND_FORMATS.get(cc.pix_fmt)
    return None if suffix is None else codec_name(stream) + suffix + HDR_TRANSFERS.get(cc.color_trc, "")


def _indexes_packets(container) -> bool:
    """Whether the opened PyAV ``container`` is read by a demuxer that indexes its packets (:data:`COPIED_DEMUXERS`)."""
    return bool(COPIED_DEMUXERS & set(container.format.name.split(",")))


def copied_stream(container, kinds):
    """The main video stream of the opened PyAV ``container`` where a player that plays the kinds of video ``kinds``
    (:func:`video_kind`; an HDR kind where it shows that HDR, else the transcode tone-maps it) shows a clip of its own
    packets (:func:`copy_clip`) as the video looks: read from a container that indexes its packets
    (:data:`COPIED_DEMUXERS`), with square pixels (else shown squared by the transcode), not interlaced (deinterlaced
    by the transcode, combed as it is); else None."""
    from vtr.data.video import main_video_stream, pixel_aspect_of, stream_flags

    if not _indexes_packets(container):
        return None
    stream = main_video_stream(container)
    if stream is None or video_kind(stream) not in kinds or stream_flags(stream)[1]:
        return None
    return stream if pixel_aspect_of(stream) == 1.0 else None


#: What an exported moment is (:func:`export_clips`' ``export_as``): "h264", a clip every player plays (the source's
#: own packets where they are such H.264 up to 1080p, else transcoded to it), or "recorded", the source's own packets
#: whatever their codec, size, bit depth, chroma, HDR, pixels or scanning, where an MP4 carries them (H.264, HEVC, AV1,
#: VP9: an iPhone's 4K HDR HEVC, a camera's 10-bit 4:2:2 H.264, as they were recorded; for players that play the
#: source), else transcoded as for "h264"
EXPORT_AS = ("h264", "recorded")


def exported_as_is(path: str, max_width: int = EXPORT_MAX_WIDTH, export_as: str = "h264") -> bool:
    """Whether a moment of the video at ``path`` is exported as its own packets (:func:`copy_clip`, ``exact``):
    in milliseconds and as it was recorded, where transcoding a 1080p moment took seconds on two cores and cost some
    of its quality. So is a video of the kind the transcode (:func:`cut_clip`) makes, which every player plays
    (:data:`PLAYED_EVERYWHERE`: a phone's in "Most Compatible", most cameras', screen recorders'), as
    :func:`copied_stream` takes it, at most ``max_width`` either way up, with any sound (in a codec other than AAC or
    MP3, encoded to AAC); ``export_as="recorded"`` (:data:`EXPORT_AS`): any video in a codec an MP4 carries, read from
    a container that indexes its packets (:data:`COPIED_DEMUXERS`). False where it cannot be read."""
    import av

    from vtr.data.video import codec_name, main_video_stream

    try:
        with av.open(str(path)) as container:
            if export_as == "recorded":
                stream = main_video_stream(container)
                return stream is not None and _indexes_packets(container) and carries("mp4", codec_name(stream))
            stream = copied_stream(container, {PLAYED_EVERYWHERE})
            if stream is None:
                return False
            cc = stream.codec_context
            return 0 < cc.width <= max_width and 0 < cc.height <= max_width
    except Exception:  # noqa: BLE001 - unreadable: the transcode says what is wrong
        return False


#: The containers a clip of its source's own packets is written in (:func:`copy_clip`), each with the video codecs it
#: carries (which of them a browser plays is the app's choice: :func:`app.media.copy_plan`) and the sound codecs every
#: browser plays in it
COPY_CONTAINERS = (("mp4", frozenset({"h264", "vp9", "hevc", "av1"}), frozenset({"aac", "mp3"})),
                   ("webm", frozenset({"vp8", "vp9"}), frozenset({"opus", "vorbis"})))


#: The sound encoder of a container whose copied clip may carry its source's sound converted (:func:`copy_clip`), and
#: its options: FFmpeg's "fast" AAC coder (FFmpeg's default for a time from 2018; "very decent at 128 kbps", its author
#: wrote), 0.6x the time of today's default two-loop one for a preview's 28 s of stereo (a probe, 2026-12-06)
SOUND_ENCODERS = {"mp4": ("aac", {"aac_coder": "fast"})}


def carries(container: str, video: str) -> bool:
    """Whether a clip copied into ``container`` (:data:`COPY_CONTAINERS`) carries video in the codec ``video``."""
    return any(video in videos for name, videos, _ in COPY_CONTAINERS if name == container)


def copy_container(video: str, sound: str | None) -> str | None:
    """The container (:data:`COPY_CONTAINERS`) a video in the codec ``video`` with its sound in ``sound`` (None: no
    sound) is copied into: one that takes both, else one that takes the video and converts the sound
    (:data:`SOUND_ENCODERS`: a camera's PCM, a film's AC-3 or FLAC, a call's Opus in an MP4, to AAC); None where
    none takes the video."""
    for container, videos, sounds in COPY_CONTAINERS:
        if video in videos and (sound is None or sound in sounds):
            return container
    for container, videos, _ in COPY_CONTAINERS:
        if video in videos and container in SOUND_ENCODERS:
            return container
    return None


def sound_copied(container: str, sound: str | None) -> bool:
    """Whether a clip copied into ``container`` (:func:`copy_clip`) carries sound in the codec ``sound`` as its
    packets (else it is decoded and encoded with :data:`SOUND_ENCODERS`)."""
    return sound is None or any(sound in sounds for name, _, sounds in COPY_CONTAINERS if name == container)


#: A clip copied from its source (:func:`copy_clip`) starts at the keyframe at or before its start: at most this many
#: seconds before it (a phone's keyframes are a second or two apart; a screen recording's or a camera's may be 10 s)
COPY_MAX_LEAD_S = 10.0


CLIP_START_TAG = "vtr: from second "  # a copied clip's comment: the second of its source it starts at


class NotCopied(Exception):
    """:func:`copy_clip` cannot take the source's packets as they are (it says why); nothing was written."""


def copy_clip(path: str, start: float, stop: float, out_path: Path, max_lead_s: float = COPY_MAX_LEAD_S,
              container: str = "mp4", exact: bool = False, tags: dict | None = None) -> float:
    """Write the packets of ``path`` from its keyframe at or before ``start`` up to ``stop`` seconds (as the index
    counts them) into ``out_path`` as they are, in an MP4 or a WebM (``container``): nothing decoded or encoded, so a
    clip of a video in codecs the browser plays (a phone's H.264, a download's VP9; an iPhone's HEVC in Safari: the
    app's :func:`app.media.copy_plan`) is made in milliseconds where its transcoding took seconds, in the source's own
    pictures, colours and display rotation. The sound is the track a player plays with the video, copied too, or,
    where its codec is not one browsers play in that container (a camera's PCM, a film's AC-3, a call's Opus in an
    MP4: :func:`sound_copied`), decoded and encoded to AAC as it is read, so it is muxed beside its pictures, from
    the clip's first frame on, in time with them (:class:`_SoundWriter`). Every frame shown before ``stop`` is in the
    clip (its packets come before ``stop`` in decoding order). Returns the second the clip starts at (its first
    keyframe's), which may be up to ``max_lead_s`` before ``start``, and writes it in the clip's comment tag
    (:func:`clip_start`). Raises :class:`NotCopied` where the packets cannot be taken so: a video codec that container
    does not carry, or sound it neither carries nor converts (:data:`COPY_CONTAINERS`, :data:`SOUND_ENCODERS`),
    non-square pixels (shown squared by the transcode; an ``exact`` clip keeps them, its MP4 saying their shape, as
    its source's does), no keyframe within ``max_lead_s`` before ``start``, or one before the first frame players
    show (a file trimmed without re-encoding, whose edit list hides the frames before the cut: the clip would show
    them), having written nothing; or a sound track whose packets stop decoding (more than :data:`AUDIO_BAD_PACKETS`
    in a row), with ``out_path`` part written (the app writes it through :func:`vtr.atomic.atomic_path`).

    ``exact`` (an MP4 only): the clip shows ``[start, stop)`` and nothing else, as an exported moment must, from
    its first frame at or after ``start`` (:func:`_first_shown_from`; the second returned): the frames from the
    keyframe to it are in the clip, to be decoded, and hidden by its edit list, as ``ffmpeg -ss … -c copy`` and
    lossless cutters write it (FFmpeg's decoder, so mpv, and Chromium honour it; QuickTime made them), and its tracks
    end at ``stop`` (:func:`_end_edits_at`); the copied sound starts with the packet that holds that second, a
    converted one at it. ``tags``: the clip's metadata instead of the comment that says where it starts (which an
    exact clip does not need)."""
    import av

    from vtr.data.video import codec_name, main_sound_stream, main_video_stream, pixel_aspect_of

    if exact and container != "mp4":
        raise ValueError(f"an exact clip is an MP4 (its edit list hides what it holds outside its span), "
                         f"not {container}")
    _, origin, _ = _rotation_and_origin(path, by_count=False)
    with av.open(ffmpeg_input(path)) as src:
        vin = main_video_stream(src)
        if vin is None:
            raise NotCopied("no video stream")
        ain = main_sound_stream(src, vin)
        sound = ain.codec_context.name if ain is not None else None
        sound_taken = sound_copied(container, sound) or container in SOUND_ENCODERS  # as it is, or converted
        if not carries(container, codec_name(vin)) or not sound_taken:
            raise NotCopied(f"{codec_name(vin)} with {sound or 'no'} sound is not copied into {container}")
        if pixel_aspect_of(vin) != 1.0 and not exact:
            raise NotCopied("non-square pixels")
        vtb = vin.time_base
        if origin is None:
            origin = float(vin.start_time * vtb) if vin.start_time is not None else 0.0
        src.seek(int(math.floor((start + origin) / vtb)), stream=vin, backward=True, any_frame=False)
        packets = src.demux(*[s for s in (vin, ain) if s is not None])
        head = []  # the sound read before the first keyframe (a container may store it first)
        for packet in packets:
            if packet.stream is vin and packet.is_keyframe and packet.pts is not None:
                break
            head.append(packet)
        else:
            raise NotCopied(f"no keyframe before {start:.1f} s")
        begin = float(packet.pts * vtb)  # on the file's clock
        if not (start + origin - max_lead_s <= begin <= start + origin + 0.5):
            raise NotCopied(f"its keyframe before {start:.1f} s is at {begin - origin:.1f} s")
        if begin < origin - 0.001:  # a file trimmed without re-encoding: its frames before the cut are hidden
            raise NotCopied(f"its keyframe before {start:.1f} s is one players hide ({begin - origin:.2f} s)")
        end = stop + origin
        timed = _with_dts(itertools.chain([p for p in head if p.stream is ain], [packet], packets), vin)
        zero = begin  # the file's second that is the clip's 0: before it, hidden
        if exact:
            ahead, zero = _first_shown_from(timed, vin, start + origin)
            timed = itertools.chain(ahead, timed)
        options = {"movflags": "+faststart"} if container == "mp4" else {}
        with av.open(str(out_path), "w", format=container, options=options) as dst:
            dst.metadata.update(tags if tags is not None else {"comment": f"{CLIP_START_TAG}{begin - origin:.6f}"})
            # from the decoder itself where no encoder has its name (AV1's libdav1d, which PyAV would look up)
            outs = {vin: dst.add_stream_from_template(vin, opaque=vin.codec_context.codec.name != codec_name(vin))}
            if codec_name(vin) == "hevc":  # Safari plays HEVC tagged hvc1 only, not the muxer's default hev1
                outs[vin].codec_tag = "hvc1"
            converted = None  # the sound decoded and encoded, where the container does not take its codec
            if ain is not None and sound_copied(container, sound):
                outs[ain] = dst.add_stream_from_template(ain)
            elif ain is not None:
                encoder, options = SOUND_ENCODERS[container]
                aout = dst.add_stream(encoder, rate=AUDIO_RATE, layout="stereo")
                aout.options = dict(options)
                converted = _SoundWriter(aout, dst, zero - origin, stop, origin)
                refused = 0
            done = {vin: False, ain: ain is None}
            shift = {s: int(round(zero / s.time_base)) for s in outs}

            shown = []  # the first video frame shown in the clip, once there is one

            def put(packet):
                stream = packet.stream
                if stream is vin and not shown and zero <= packet.pts * vtb < end:
                    shown.append(packet.pts)
                packet.pts -= shift[stream]
                packet.dts -= shift[stream]
                packet.stream = outs[stream]
                dst.mux(packet)

            late = []  # the video's packets decoded at or after ``stop``: some may be shown before it (B-frames)
            for packet in timed:
                stream = packet.stream
                if converted is not None and stream is ain:  # in the order read, so muxed beside its pictures
                    if done[ain] or packet.size == 0:  # the demuxer's empty packet at the end: flushed below
                        continue
                    try:
                        frames = ain.decode(packet)
                    except av.FFmpegError as e:  # a damaged packet, skipped as players skip it
                        refused += 1
                        if refused > AUDIO_BAD_PACKETS:
                            raise NotCopied(f"its sound does not decode: {e}") from e
                        continue
                    refused = 0
                    if not all(converted.add(f) for f in frames):
                        done[ain] = True
                        if all(done.values()):
                            break
                    continue
                if stream not in outs or done[stream] or packet.dts is None or packet.pts is None:
                    continue
                if stream is vin and (late or packet.dts * stream.time_base >= end):
                    # a frame shown before ``stop`` is decoded before it, or among the few after it a decoder holds
                    # back (its reorder depth: at most 16 frames, and never past a keyframe)
                    if not packet.is_keyframe and len(late) < MAX_REORDERED:
                        late.append(packet)
                        continue
                    _put_shown_before(late, end, put)
                    late, done[vin] = [], True
                    if all(done.values()):
                        break
                    continue
                if stream is ain:
                    if float(packet.pts * stream.time_base) >= end:
                        done[ain] = True
                        if all(done.values()):
                            break
                        continue
                    if exact:  # from the packet that holds the clip's 0 (its samples before it hidden)
                        if float((packet.pts + (packet.duration or 0)) * stream.time_base) <= zero:
                            continue
                    elif float(packet.pts * stream.time_base) < zero:
                        continue
                put(packet)
            _put_shown_before(late, end, put)  # the video ended while they were held
            if converted is not None:
                if not done[ain]:  # the decoder's last frames
                    for frame in ain.decode(None):
                        if not converted.add(frame):
                            break
                converted.close()
    if not shown:
        raise NotCopied(f"no frames between {start:.1f} s and {stop:.1f} s")
    if exact:
        _end_edits_at(out_path, stop + origin - zero)
    return zero - origin


def _first_shown_from(packets, video, second: float) -> tuple[list, float]:
    """The packets read from ``packets`` (in decoding order) until the time of ``video``'s first frame shown at or
    after ``second`` (on the file's clock) is sure, and that time (``second`` where no frame comes): a clip that
    starts there starts on a frame, which every player shows from its first instant (one that starts between two
    frames is shown from the earlier by some, from the later by others). Sure once a frame is decoded after it:
    those decoded later are shown later still."""
    ahead, first = [], None
    for packet in packets:
        ahead.append(packet)
        if packet.stream is not video or packet.pts is None:
            continue
        at = float(packet.pts * video.time_base)
        if at >= second - 1e-6 and (first is None or at < first):
            first = at
        if first is not None and packet.dts is not None and float(packet.dts * video.time_base) >= first:
            break
    return ahead, first if first is not None else second


#: Video packets decoded after a clip's end that may hold frames shown before it (:func:`copy_clip`): H.264's and
#: HEVC's decoded picture buffer holds at most 16 frames
MAX_REORDERED = 16


def _put_shown_before(late, end: float, put) -> None:
    """Of ``late`` (video packets in decoding order, each decoded at or after ``end`` seconds on its stream's clock),
    ``put`` those up to the last one shown before ``end``: the frames a decoder needs to show every frame before
    ``end``, and none after it for nothing."""
    shown = [k for k, p in enumerate(late) if p.pts is not None and p.pts * p.stream.time_base < end]
    for packet in late[:shown[-1] + 1] if shown else []:
        put(packet)


def _end_edits_at(path, seconds: float) -> None:
    """Shorten the edit list of each track of the MP4 at ``path`` (as FFmpeg's muxer writes it: its ``moov`` box,
    ``+faststart``, before the media) to ``seconds`` of presentation at most, and the track's and the movie's durations
    with it: the frames and sound a copied clip holds after its end, to be decoded, are not shown (:func:`copy_clip`).
    A track without an edit list is left as it is (FFmpeg's muxer writes one for each)."""
    import struct

    def header(buf, at, end):  # (type, body start, box end) of the box at buf[at:]
        size, kind = struct.unpack_from(">I4s", buf, at)
        head = 8
        if size == 1:
            size, head = struct.unpack_from(">Q", buf, at + 8)[0], 16
        elif size == 0:
            size = end - at
        if size < head or at + size > end:
            raise ValueError(f"{path}: a damaged {kind.decode('latin-1')!r} box")
        return kind, at + head, at + size

    def boxes(buf, begin, end):
        while begin + 8 <= end:
            kind, body, begin = header(buf, begin, end)
            yield kind, body, begin

    def number(buf, at, wide, value=None):  # an unsigned 32- or 64-bit field, read, or written first
        form = ">Q" if wide else ">I"
        if value is not None:
            struct.pack_into(form, buf, at, value)
        return struct.unpack_from(form, buf, at)[0]

    with open(path, "r+b") as f:
        size, at = os.fstat(f.fileno()).st_size, 0
        while True:  # the top-level boxes, to the moov
            f.seek(at)
            head = f.read(16)
            if len(head) < 8:
                raise ValueError(f"{path} has no moov box")
            kind, body, box_end = header(head.ljust(16, b"\0"), 0, size - at)
            if kind == b"moov":
                break
            at += box_end
        f.seek(at)
        moov = bytearray(f.read(box_end))
        movie = dict((k, b) for k, b, _ in boxes(moov, body, len(moov)))
        if b"mvhd" not in movie:
            raise ValueError(f"{path}: its moov has no mvhd")
        mvhd = movie[b"mvhd"]
        wide = moov[mvhd] == 1  # version 1: 64-bit times
        scale = number(moov, mvhd + (20 if wide else 12), False)
        limit = int(round(seconds * scale))
        longest = 0
        for kind, trak, trak_end in boxes(moov, body, len(moov)):
            if kind != b"trak":
                continue
            parts = {k: (b, e) for k, b, e in boxes(moov, trak, trak_end)}
            tkhd = parts[b"tkhd"][0]
            tkhd_duration = tkhd + (28 if moov[tkhd] == 1 else 20)
            if b"edts" not in parts:
                longest = max(longest, number(moov, tkhd_duration, moov[tkhd] == 1))
                continue
            elst = next(b for k, b, _ in boxes(moov, *parts[b"edts"]) if k == b"elst")
            v1 = moov[elst] == 1
            left = limit
            for k in range(number(moov, elst + 4, False)):  # each edit: its duration, media time, rate
                entry = elst + 8 + k * (20 if v1 else 12)
                kept = min(number(moov, entry, v1), left)
                number(moov, entry, v1, kept)
                left -= kept
            number(moov, tkhd_duration, moov[tkhd] == 1, limit - left)
            longest = max(longest, limit - left)
        number(moov, mvhd + (24 if wide else 16), wide, longest)
        f.seek(at)
        f.write(moov)


def _with_dts(packets, video):
    """``packets`` with a decoding time on each of ``video``'s: Matroska stores none, and FFmpeg's demuxer finds it
    from the presentation times only after the first frames of a stream with B-frames (after a seek too), which the
    MP4 muxer refuses. Those are held until a packet with one comes, and given times before it a frame apart (or
    between it and the last one known), never after their own presentation time: what ``ffmpeg -c copy`` does."""
    step = int(round(1 / (video.average_rate * video.time_base))) if video.average_rate else 1
    held, last = [], None
    for packet in packets:
        if packet.stream is not video:
            yield packet
            continue
        if packet.dts is None and packet.pts is not None:
            held.append(packet)
            continue
        if held and packet.dts is not None:
            n = len(held)
            for k, early in enumerate(held):
                if last is None or packet.dts - last <= n:
                    dts = packet.dts - (n - k) * max(step, 1)
                else:
                    dts = last + (packet.dts - last) * (k + 1) // (n + 1)
                early.dts = min(dts, early.pts)
                yield early
            held = []
        if packet.dts is not None:
            last = packet.dts
        yield packet
    for k, late in enumerate(held):  # the stream ended before a time came: a frame apart after the last one known
        late.dts = min((last if last is not None else late.pts) + (k + 1) * max(step, 1), late.pts)
        yield late


def clip_start(path) -> float | None:
    """The second of its source a clip made by :func:`copy_clip` starts at (its comment tag); None for another file
    or one that cannot be read."""
    import av

    try:
        with av.open(str(path)) as container:  # a WebM's tags read back in capitals
            comment = next((v for k, v in container.metadata.items() if k.lower() == "comment"), "")
    except Exception:  # noqa: BLE001 - unreadable: made again
        return None
    if not comment.startswith(CLIP_START_TAG):
        return None
    try:
        return float(comment[len(CLIP_START_TAG):])
    except ValueError:
        return None


def _rotation_and_origin(path: str, by_count: bool | None = None) -> tuple[int, float | None, bool | CountTable]:
    """The video's display rotation (degrees counter-clockwise; 0 when it has none), where the index's second 0
    lies on its timestamps (the reader's :attr:`~vtr.data.video.PyAVVideoReader.time_origin`: its first frame
    shown), and whether its timestamps jump: ``by_count`` False where that is known not to be so, else its reader's
    :class:`~vtr.data.video.CountTable` (every packet read, once per process), with which it is cut timed by count
    from the keyframe before the cut; ``(0, None, False)`` when it cannot be read."""
    from vtr.data.video import open_video

    try:
        with open_video(str(path), backend="pyav") as reader:
            table = reader.count_table() if by_count is not False else None
            return reader.rotation, reader.time_origin, table if table is not None else bool(by_count)
    except Exception as e:  # noqa: BLE001 - the transcode itself reports what is wrong with the file
        logger.debug("no display rotation nor first frame shown for %s: %s", path, e)
        return 0, None, False


def _transcode_once(path, start, stop, out_path, max_width, rotation: int, origin: float | None, with_audio: bool,
                    tags: dict | None = None, by_count: bool | CountTable = False,
                    max_rate: float | None = None, preset: str = EXPORT_PRESET) -> None:
    import av

    from vtr.data.video import frame_rate, main_video_stream, pixel_aspect_of

    with av.open(ffmpeg_input(path)) as src:
        vin = main_video_stream(src)
        if vin is None:
            raise VtrError(f"{Path(path).name} has no video stream")
        vin.thread_type = "AUTO"
        # The index counts seconds from the first frame shown; streams (MPEG-TS, camcorders' .mts) can start
        # anywhere, and a recording can start with frames that cannot be decoded
        if origin is None:
            origin = float(vin.start_time * vin.time_base) if vin.start_time is not None and vin.time_base else 0.0
        rate = frame_rate(vin) or Fraction(25)
        if rate > 120:
            rate = Fraction(30)
        thin = max_rate is not None and rate > max_rate  # a 60 fps phone video previewed at 30: every other frame
        if thin:
            rate = Fraction(max_rate).limit_denominator(1001)
        src_w, src_h = vin.codec_context.width or max_width, vin.codec_context.height or max_width
        sar = pixel_aspect_of(vin)
        if sar != 1:  # non-square pixels (HDV 1440x1080, DV): square them as players do
            src_w = int(round(src_w * sar))
        width = min(max_width, src_w)
        height = int(round(src_h * width / src_w))
        width, height = max(2, width // 2 * 2), max(2, height // 2 * 2)
        with av.open(str(out_path), "w", format="mp4", options={"movflags": "+faststart"}) as dst:
            dst.metadata.update(tags or {})
            # Every output stream must exist before the first packet is written.
            vout = dst.add_stream("libx264", rate=rate)
            vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
            vout.options = {"crf": "23", "preset": preset}
            vout.codec_context.time_base = Fraction(1, CLIP_TICKS)  # each frame at its own time (_copy_video)
            vout.codec_context.framerate = rate
            if vin.codec_context.color_trc in (PQ, HLG) or format_has_alpha(vin.codec_context.pix_fmt):
                # tone-mapped to SDR (vtr.data.hdr), or put over white (a GIF, an APNG, ProRes 4444): its RGB made
                # BT.709 (_copy_video), and said so
                cc = vout.codec_context
                cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = 1, 1, 1, 1  # BT.709, limited
            else:  # its YUV copied: said in the source's colours, where players would guess them by the clip's size
                cc = vout.codec_context
                cc.colorspace, cc.color_primaries, cc.color_trc = source_colors(vin)
            if rotation:  # portrait phone video: stored frames copied as they are, turned upright by the player
                vout.set_display_rotation(rotation)
            aout = dst.add_stream("aac", rate=AUDIO_RATE, layout="stereo") if with_audio else None
            n_frames, first = _copy_video(src, vin, vout, dst, start, stop, rate, width, height, origin, by_count,
                                          thin)
            if n_frames == 0:
                raise VtrError(f"no frames of {Path(path).name} between {start:.1f} s and {stop:.1f} s")
            if aout is not None:
                _copy_audio(src, vin, aout, dst, first, stop, origin, by_count)  # the clip's time 0: its first frame


DEINTERLACE = ("bwdif", "mode=send_frame:parity=auto:deint=interlaced")


def deinterlaced(frames, time_base):
    """``frames`` as they come, except that from the first interlaced one (a camcorder's 1080i AVCHD, broadcast
    recordings) they pass through FFmpeg's ``bwdif``, as players show them: written as they are into a progressive
    H.264 file, each frame's two fields, half a frame period apart, combed every moving edge. Frames that are
    not flagged interlaced pass through unchanged; the filter holds one frame back, so the last is flushed at the
    end."""
    from vtr.data.video import filter_graph, pulled

    graph, shape = None, None
    for frame in frames:
        if graph is None and not frame.interlaced_frame:
            yield frame
            continue
        if graph is not None and (frame.width, frame.height, frame.format.name) != shape:  # a stream that changes
            graph.push(None)
            yield from pulled(graph)
            graph = None
        if graph is None:
            shape = (frame.width, frame.height, frame.format.name)
            graph = filter_graph(frame, time_base, *DEINTERLACE)
        graph.push(frame)
        yield from pulled(graph)
    if graph is not None:
        graph.push(None)
        yield from pulled(graph)


#: Threads that turn a transcode's decoded frames into the encoder's (swscale, HDR tone mapping in numpy, both out
#: of the GIL), a frame each, beside the decoder's and the encoder's own threads: at most this many, and no more than
#: the cores the process may use. On one thread, the second of two cores waited while a frame was converted: an HLG
#: moment's preview took 22.3 s where two threads take 14.8 (timed by hand on the AMX VM; bench/README.md, twenty-
#: seventh round, with the faster tone mapping too)
CONVERT_THREADS = 4


def _converted(frames, convert, threads: int):
    """``convert(frame)`` of each ``(frame, pts)`` of ``frames`` as ``(converted, pts)``, in their order, on ``threads``
    threads (each frame whole; its own converter per thread, as swscale's are not shared); at most two frames a
    thread held at once."""
    if threads <= 1:
        yield from ((convert(frame), pts) for frame, pts in frames)
        return
    pending = deque()
    with ThreadPoolExecutor(threads, thread_name_prefix="vtr-cut") as pool:
        try:
            for frame, pts in frames:
                pending.append((pool.submit(convert, frame), pts))
                if len(pending) >= 2 * threads:
                    future, at = pending.popleft()
                    yield future.result(), at
            while pending:
                future, at = pending.popleft()
                yield future.result(), at
        finally:
            for future, _ in pending:  # an error, or the consumer gone: the queued frames are not converted
                future.cancel()


def _copy_video(src, vin, vout, dst, start, stop, rate, width, height, origin: float = 0.0,
                by_count: bool | CountTable = False, thin: bool = False) -> tuple[int, float | None]:
    """The frames of ``[start, stop)`` into ``vout``, each at its own time from the first's (time 0), to
    1/:data:`CLIP_TICKS` s (``thin``: the first frame in each tick of ``rate``, the others left out); returns
    (frames written, the first's time in seconds from ``origin``; None when none). Before, frames were put on a grid
    of the source's average rate, each in the next free place: in a variable-rate video (a phone's in low light) the
    pictures of a stretch faster than the average ran late, 0.9 s behind the sound after 5 s at 30 fps in a video
    averaging 25. Frames are converted (:func:`_converted`) on up to :data:`CONVERT_THREADS` threads."""
    import threading

    import av
    from av.video.reformatter import VideoReformatter

    from vtr.data.video import decode_from, frame_rate
    from vtr.device import usable_cores

    matrix = source_colors(vin)[0]  # the matrix the stream says: YUV is copied in its own, RGB converted to it
    local = threading.local()

    def convert(frame):
        # (one converter a thread for the clip: a frame's own reformat builds one per call, half the time of 4K to 480p)
        reformatter = getattr(local, "reformatter", None)
        if reformatter is None:
            reformatter = local.reformatter = VideoReformatter()
        if is_hdr(frame) or has_alpha(frame):  # a phone's HDR video as SDR, an APNG's transparency over white (as
            # the model sees them), in BT.709 (the stream is tagged so)
            rgb = shown_rgb(frame, reformatter, width, height, "BICUBIC")
            return reformatter.reformat(av.VideoFrame.from_ndarray(rgb, format="rgb24"), format="yuv420p",
                                        dst_colorspace="ITU709", dst_color_range="MPEG")
        # limited range, which players take an H.264 stream without a range flag to be in
        rgb_source = frame.format.is_rgb or frame.format.has_palette
        return reformatter.reformat(frame, width=width, height=height, format="yuv420p",
                                    src_color_range=color_range(frame), dst_color_range="MPEG",
                                    dst_colorspace=matrix if rgb_source else None)

    first = None

    def timed():
        """The frames to write, each with its time in the clip (1/CLIP_TICKS s)."""
        nonlocal first
        last_pts, last_tick = -1, -1
        period, before = 1.0 / float(frame_rate(vin) or 25), None
        for frame in deinterlaced(decode_from(src, vin, start, origin, by_count=by_count), vin.time_base):
            t = frame.time
            if t is None:  # a frame whose packet has no time: one of several small ones that share an MPEG-PS packet
                # (H.264 in PS, as FFmpeg's muxer writes it), as players show it, a frame period after the one before;
                # it was left out
                if before is None:
                    continue
                t = before + period
            before = t
            t -= origin
            if t < start - 1e-3:
                continue
            if t >= stop - 1e-3:  # [start, stop), to a millisecond both ways: the seconds are sums of floats
                break
            if first is None:  # the clip's time 0 (its sound is laid out from it too, so it keeps time to the sample)
                first = t
            if thin:  # the first frame in each tick of the rate (every other one of 60 fps at 30)
                tick = math.floor((t - first) * rate + 1e-6)
                if tick <= last_tick:
                    continue
                last_tick = tick
            last_pts = max(last_pts + 1, int(round((t - first) * CLIP_TICKS)))
            yield frame, last_pts

    written = 0
    for out, pts in _converted(timed(), convert, min(CONVERT_THREADS, usable_cores())):
        out.pts, out.time_base = pts, Fraction(1, CLIP_TICKS)
        written += 1
        for packet in vout.encode(out):
            dst.mux(packet)
    for packet in vout.encode():
        dst.mux(packet)
    return written, first


#: A clip's frames are placed to 1/90000 s (MPEG's clock), each at its own time (:func:`_copy_video`)
CLIP_TICKS = 90000




def source_colors(vin) -> tuple[int, int, int]:
    """(matrix, primaries, transfer) of the source's YUV, which the cut copies: its tags, and where it has none, what
    players take an untagged stream of its size to be (BT.709 from 1280 wide or more than 576 lines up, BT.601
    below: mpv, Chromium). The cut's stream says them, all three (Chromium ignores a matrix said alone). Before, the
    cut said none, and Chromium took an 854x480 preview of an HD phone video (BT.709) to be BT.601: reds and greens
    shown off by up to 20 levels (a red 200,30,30 as 186,12,32). A source of RGB pictures is converted to the matrix
    said: BT.709 where its stream says RGB, else the one its size gives."""
    cc = vin.codec_context
    matrix = said_matrix(cc.colorspace)
    if matrix in (None, RGB_MATRIX):  # none (or a reserved code), or RGB pictures
        matrix = BT709 if matrix == RGB_MATRIX else guessed_matrix(cc.width, cc.height)
    bt709 = matrix == BT709
    primaries = cc.color_primaries if cc.color_primaries not in (UNSPECIFIED, 0) else (BT709 if bt709 else SMPTE170M)
    transfer = cc.color_trc if cc.color_trc not in (UNSPECIFIED, 0) else (BT709 if bt709 else SMPTE170M)
    return matrix, primaries, transfer


def color_range(frame) -> str:
    """The range ``frame``'s YUV is in: "JPEG" (full, 0-255) for a full-range source (many Android phones' H.264 and
    HEVC, MJPEG cameras and webcams: FFmpeg's ``yuvj`` formats, or a frame tagged full range), else "MPEG" (16-235).
    Converted without it, as before, a full-range frame went into the H.264 file as it was and players, taking the
    file to be limited range, crushed its shadows and clipped its highlights (grey 20 shown as 2)."""
    return "JPEG" if frame.color_range == 2 or frame.format.name.startswith("yuvj") else "MPEG"


def _copy_audio(src, vin, aout, dst, start, stop, origin: float = 0.0, by_count: bool | CountTable = False) -> None:
    """The sound of ``[start, stop)`` into ``aout`` (AAC stereo), each stretch at its time (:class:`_SoundWriter`)."""
    from vtr.data.video import decode_from, main_sound_stream

    ain = main_sound_stream(src, vin)  # the sound a player plays with the video
    writer = _SoundWriter(aout, dst, start, stop, origin)
    for frame in decode_from(src, ain, start, origin, frames=_audio_frames, by_count=by_count):
        if not writer.add(frame):
            break
    writer.close()


class _SoundWriter:
    """The sound of ``[start, stop)`` seconds (from the video's first frame, ``origin`` seconds on the file's clock)
    encoded into ``aout`` (an encoder's stream of ``dst`` taking fltp stereo at :data:`AUDIO_RATE`), from decoded
    frames given in order (:meth:`add`), each stretch at its time: the samples of the first frame before ``start`` left
    out, and silence where the sound starts after ``start`` or stops for a while (a recording whose sound starts late,
    a broadcast's dropout). Before, the frames were written one after the other from the clip's start: the sound of a
    recording whose sound starts 1 s after its pictures came 1 s early, and after each dropout it ran earlier by its
    length. :meth:`close` writes what the resampler and the encoder still hold."""

    def __init__(self, aout, dst, start: float, stop: float, origin: float = 0.0):
        import av

        self.aout, self.dst, self.start, self.stop, self.origin = aout, dst, start, stop, origin
        self.resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
        self.samples, self.skip = 0, 0  # samples written; samples still to leave out (those before ``start``)
        self.given = None  # seconds of sound given to the resampler, from ``start``

    def _encode(self, frames) -> None:
        for f in frames:
            if self.skip:
                if f.samples <= self.skip:
                    self.skip -= f.samples
                    continue
                f = _frame_of(f.to_ndarray()[:, self.skip:])
                self.skip = 0
            f.pts, f.time_base = self.samples, Fraction(1, AUDIO_RATE)
            self.samples += f.samples
            for packet in self.aout.encode(f):
                self.dst.mux(packet)

    def add(self, frame) -> bool:
        """Take one decoded frame; False once it starts at or after ``stop`` (nothing more is needed)."""
        import numpy as np

        if frame.time is None:
            return True
        t = frame.time - self.origin
        length = frame.samples / frame.sample_rate
        if t + length <= self.start:
            return True
        if t >= self.stop:
            return False
        first = self.given is None
        if first:  # the first frame: its samples before ``start`` left out
            self.skip, self.given = max(0, round((self.start - t) * AUDIO_RATE)), min(t - self.start, 0.0)
        gap = (t - self.start) - self.given
        # the sound stops or starts late here: silence, as players keep time. Before the first frame, however short:
        # a copied clip's sound starts at the packet after its keyframe (:func:`copy_clip`), up to a frame late (a
        # FLAC frame is 96 ms), and that sound came that much early
        if gap > (0.5 / AUDIO_RATE if first else max(SOUND_GAP_S, 2 * length)):
            if round(gap * AUDIO_RATE):
                self._encode([_frame_of(np.zeros((2, round(gap * AUDIO_RATE)), np.float32))])
            self.given += gap
        self._encode(self.resampler.resample(frame))
        self.given += length
        return True

    def close(self) -> None:
        self._encode(self.resampler.resample(None))
        for packet in self.aout.encode():
            self.dst.mux(packet)


#: A stop in a clip's sound longer than this (and than two of its frames) is kept as silence (:func:`_copy_audio`)
SOUND_GAP_S = 0.05


def _frame_of(planes):
    """An AAC encoder's frame (fltp stereo at :data:`AUDIO_RATE`) of float32 ``planes`` [2, samples]."""
    import av
    import numpy as np

    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planes, dtype=np.float32), format="fltp", layout="stereo")
    frame.sample_rate = AUDIO_RATE
    return frame


def _audio_frames(container, stream):
    """The sound's frames from where ``container`` was sought to, past packets the decoder refuses (see
    :data:`AUDIO_BAD_PACKETS`): that error on the first packet after a seek cost a DVD's or an ``.mpg``'s clips their
    sound."""
    from vtr.data.video import decodable_frames

    return decodable_frames(container, stream, refused_in_a_row=AUDIO_BAD_PACKETS)


def export_clips(spans, folder, max_width: int = EXPORT_MAX_WIDTH, progress: bool = False,
                 timed_by_count=None, export_as: str = "h264") -> list[tuple]:
    """Cut each ``(path, start, end)`` or ``(path, start, end, recorded)`` of ``spans`` into ``folder`` (created)
    as :func:`export_name` names it, and return ``(written path or None, error or None)`` for each, in order. One
    that fails (a video gone, a span with no frames) is said and the others go on. Each clip names its source in
    its comment tag (``vtr: PATH START-END``): a name taken by the same source and span (an export run again) is
    that clip, kept; one taken by another video gets `` (2)``, `` (3)``, ... Nothing is overwritten. ``recorded``
    (seconds since the epoch, when the video was recorded; None: not known): the clip's ``creation_time`` tag and
    its file's time are that moment's, ``recorded + start``, so that photo libraries and editors file it where the
    video is, not on the day of the export. ``timed_by_count``: ``path -> bool | None``, whether a video's timestamps
    jump where that is known (:func:`cut_clip`'s ``by_count``: an index's catalog knows). ``export_as``
    (:data:`EXPORT_AS`): "h264", a clip every player plays, or "recorded", the source's own packets whatever their
    codec, size and HDR where an MP4 carries them (:func:`exported_as_is`), its comment tag saying so (`` as
    recorded``), so that a clip of the same span exported the other way is not taken for it."""
    from tqdm import tqdm

    from vtr.atomic import atomic_path

    if export_as not in EXPORT_AS:
        raise VtrError(f"an export is {' or '.join(EXPORT_AS)}, not {export_as!r}")
    folder = export_folder(folder)
    done = []
    for path, start, end, *recorded in tqdm(spans, desc="exporting", unit="moment", disable=not progress or not spans,
                                            dynamic_ncols=True):
        comment = f"vtr: {path} {float(start):.3f}-{float(end):.3f}"
        comment += " as recorded" if export_as == "recorded" else ""
        created = float(recorded[0]) + float(start) if recorded and recorded[0] is not None else None
        if not Path(path).is_file():
            done.append((None, f"{Path(path).name} is not there (moved or deleted since it was indexed?)"))
            continue
        try:
            target = _free_name(folder, export_name(path, start, end), comment)
            if not target.is_file():
                by_count = timed_by_count(path) if timed_by_count else None
                if by_count or not _copied(path, float(start), float(end), target, max_width, comment, created,
                                           export_as):
                    with atomic_path(target) as tmp:
                        cut_clip(path, start, end, tmp, max_width, comment=comment, created=created,
                                 by_count=by_count)
                if created is not None:
                    os.utime(target, (created, created))
            done.append((str(target), None))
        except VtrError as e:
            done.append((None, str(e)))
        except Exception as e:  # noqa: BLE001 - any decoder/encoder failure of one clip: said, the others go on
            done.append((None, f"cannot cut {Path(path).name}: {e}"))
    return done


def _copied(path: str, start: float, end: float, target: Path, max_width: int, comment: str,
            created: float | None, export_as: str = "h264") -> bool:
    """Whether the moment ``[start, end)`` of ``path`` was written to ``target`` as its own packets
    (:func:`exported_as_is`); False where it is to be transcoded, nothing written."""
    from vtr.atomic import atomic_path

    if not exported_as_is(path, max_width, export_as):
        return False
    try:
        with atomic_path(target) as tmp:
            copy_clip(path, start, end, tmp, exact=True, tags=clip_tags(comment, created))
    except NotCopied as e:
        logger.debug("export of %s transcoded: %s", path, e)
        return False
    except Exception as e:  # noqa: BLE001 - the transcode says what is wrong with the file, if anything is
        if disk_full(e):
            raise
        logger.info("export of %s not copied: %s", path, e)
        return False
    return True


def export_folder(folder) -> Path:
    """``folder`` made (with its parents) to export into; VtrError saying why when it cannot be."""
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VtrError(f"cannot export into {folder}: {e.strerror or e}") from e
    return folder


def _free_name(folder: Path, name: str, comment: str) -> Path:
    """``folder / name``, or the first ``name (N)`` that is free or holds the clip ``comment`` names."""
    stem, suffix = name[:-len(".mp4")], ".mp4"
    for n in range(1, 10_000):
        target = folder / (name if n == 1 else f"{stem} ({n}){suffix}")
        if not target.exists() or _comment_of(target) == comment:
            return target
    raise VtrError(f"no free name for {name} in {folder}")


def _comment_of(path: Path) -> str | None:
    import av

    try:
        with av.open(str(path)) as f:
            return f.metadata.get("comment")
    except Exception:  # noqa: BLE001 - not a clip this can read: not the one asked for
        return None
