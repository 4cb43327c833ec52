"""The app's service layer and media helpers, without a server."""

import math
import os
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from app.media import make_preview, make_thumbnail
from app.service import IndexService, Moment, clock, folder_glob, group_by_video, typed_folder
from tests.videos import frame_index_of, indexed_frames, write_trimmed_copy, write_video
from vtr.errors import VtrError


def write_video_with_sound(path, frames, fps=10, rate=16000, video="mpeg4", audio="aac", fmt=None, rising=False,
                           pix_fmt="yuv420p"):
    """``frames`` with a mono tone; ``rising``: 220 Hz in its first second, 440 in its second, and so on."""
    with av.open(str(path), "w", format=fmt) as c:
        v = c.add_stream(video, rate=fps)  # MPEG-4 part 2: a codec browsers cannot play
        v.width, v.height, v.pix_fmt, v.bit_rate = frames.shape[2], frames.shape[1], pix_fmt, 4_000_000
        a = c.add_stream(audio, rate=rate, layout="mono")
        for f in frames:
            for p in v.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        n, seconds = a.codec_context.frame_size or 1024, len(frames) / fps
        for k in range(int(seconds * rate) // n):
            t = np.arange(k * n, (k + 1) * n) / rate
            wave = np.sin(2 * np.pi * 220 * (1 + np.floor(t)) * t) * 0.3 if rising else np.sin(t * rate * 0.05)
            af = av.AudioFrame.from_ndarray(wave[None].astype(np.float32), format="fltp", layout="mono")
            af.sample_rate, af.pts = rate, k * n
            for p in a.encode(af):
                c.mux(p)
        for s in (v, a):
            for p in s.encode():
                c.mux(p)
    return path


def test_preview_starts_at_the_matched_second_in_h264(tmp_path):
    src = write_video_with_sound(tmp_path / "talk.mkv", indexed_frames(60))  # 6 s at 10 fps, MPEG-4 part 2
    clip = make_preview(str(src), 2.0, 3.0, tmp_path / "cache", tail_s=1.0)
    with av.open(str(clip)) as c:
        kinds = {s.type: s.codec_context.name for s in c.streams}
        assert kinds == {"video": "h264", "audio": "aac"}
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"
        shown = [frame_index_of(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
    # 2.0 s .. 3.0 s + 1 s tail, every frame once (grey levels after two lossy encodes: +-1)
    assert len(shown) == 20 and shown[0] == 20
    assert all(abs(got - want) <= 1 for got, want in zip(shown, range(20, 40)))
    assert make_preview(str(src), 2.0, 3.0, tmp_path / "cache", tail_s=1.0) == clip  # cached
    with pytest.raises(VtrError, match="no frames"):
        make_preview(str(src), 30.0, 40.0, tmp_path / "cache")
    with pytest.raises(VtrError):
        make_preview(str(tmp_path / "gone.mp4"), 0.0, 1.0, tmp_path / "cache")


@pytest.mark.parametrize("name, video, audio, fmt", [("VTS_01_1.VOB", "mpeg2video", "ac3", "vob"),
                                                     ("holiday.mpg", "mpeg1video", "mp2", None)])
def test_a_preview_of_an_mpeg_program_stream_keeps_its_sound(tmp_path, name, video, audio, fmt):
    """A DVD's VOB (AC-3) or an .mpg (MP2): the first audio packet after the seek to the moment lies inside a frame
    and does not decode, and that error cut the preview (and the export) without sound. Its sound is the video's
    at that moment: the tone of its third second."""
    frames = np.repeat(indexed_frames(30), 5, axis=0)  # 6 s at 25 fps: MPEG-1 codes no 10 fps
    src = write_video_with_sound(tmp_path / name, frames, fps=25, rate=48000, video=video, audio=audio, fmt=fmt,
                                 rising=True)
    clip = make_preview(str(src), 2.0, 3.0, tmp_path / "cache", tail_s=1.0)
    with av.open(str(clip)) as c:
        assert [s.type for s in c.streams] == ["video", "audio"]
        rate = c.streams.audio[0].sample_rate
        sound = np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])
    assert len(sound) == pytest.approx(2 * rate, rel=0.05)

    def pitch(seconds):  # the loudest frequency of [seconds, seconds + 0.6)
        part = sound[int(seconds * rate):int((seconds + 0.6) * rate)]
        return np.fft.rfftfreq(len(part), 1 / rate)[np.abs(np.fft.rfft(part * np.hanning(len(part)))).argmax()]

    assert pitch(0.2) == pytest.approx(660, abs=10) and pitch(1.2) == pytest.approx(880, abs=10)


def test_preview_counts_seconds_from_the_first_frame_of_a_stream_that_starts_late(tmp_path):
    # camcorders' .mts and broadcast .ts start their clock anywhere: here at 100 s; the index's 2 s is 102 s
    src = tmp_path / "camcorder.ts"
    with av.open(str(src), "w") as c:
        v = c.add_stream("mpeg2video", rate=10)
        v.width, v.height, v.pix_fmt, v.bit_rate = 64, 48, "yuv420p", 4_000_000
        v.codec_context.time_base = Fraction(1, 10)
        for i, f in enumerate(indexed_frames(60)):
            frame = av.VideoFrame.from_ndarray(f, format="rgb24")
            frame.pts, frame.time_base = 1000 + i, Fraction(1, 10)
            for packet in v.encode(frame):
                c.mux(packet)
        for packet in v.encode():
            c.mux(packet)
    with av.open(str(src)) as c:
        assert float(c.streams.video[0].start_time * c.streams.video[0].time_base) > 99
    clip = make_preview(str(src), 2.0, 3.0, tmp_path / "cache", tail_s=0.0)
    with av.open(str(clip)) as c:
        shown = [frame_index_of(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
    assert len(shown) == 10 and all(abs(got - want) <= 1 for got, want in zip(shown, range(20, 30)))


@pytest.mark.parametrize("start", [0.0, 2.0])
def test_preview_of_a_camcorder_ts_starts_at_its_second(tmp_path, start):
    """MPEG-TS with B-frames and a keyframe every 1.6 s (a camcorder's .mts): its seeks land past the target, also
    when the target is the first frame, and the decoder then waits for the next keyframe."""
    src = write_video(tmp_path / "cam.ts", indexed_frames(50), fps=10,
                      options={"preset": "veryfast", "bf": "3", "g": "16", "crf": "12"})
    clip = make_preview(str(src), start, start + 1.0, tmp_path / "cache", tail_s=0.0)
    with av.open(str(clip)) as c:
        shown = [frame_index_of(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
    first = int(start * 10)
    assert len(shown) == 10 and all(abs(got - want) <= 1 for got, want in zip(shown, range(first, first + 10))), shown


@pytest.mark.parametrize("rotation", [90, -90])
def test_preview_of_portrait_phone_video_keeps_its_display_rotation(tmp_path, rotation):
    src = write_video(tmp_path / "portrait.mp4", indexed_frames(30, 64, 128), fps=10, rotation=rotation)
    clip = make_preview(str(src), 1.0, 2.0, tmp_path / "cache")
    with av.open(str(clip)) as c:
        frame = next(c.decode(video=0))
        assert (frame.width, frame.height) == (128, 64)  # stored as the source stores it ...
        assert frame.rotation % 360 == rotation % 360  # ... and shown upright by the player, like the source


def test_preview_of_non_square_pixels_is_shown_at_its_display_aspect(tmp_path):
    # HDV stores 16:9 pictures as 1440x1080 with 4:3 pixels; here 144x108 (4:3 stored, 16:9 shown)
    src = tmp_path / "hdv.mp4"
    with av.open(str(src), "w") as c:
        v = c.add_stream("libx264", rate=10)
        v.width, v.height, v.pix_fmt = 144, 108, "yuv420p"
        v.codec_context.sample_aspect_ratio = Fraction(4, 3)
        for f in indexed_frames(20, 108, 144):
            for packet in v.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(packet)
        for packet in v.encode():
            c.mux(packet)
    clip = make_preview(str(src), 0.0, 1.0, tmp_path / "cache")
    with av.open(str(clip)) as c:
        v = c.streams.video[0]
        assert (v.codec_context.width, v.codec_context.height) == (192, 108)
        assert not v.sample_aspect_ratio or v.sample_aspect_ratio == 1


def packets_of(path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(video=0) if p.size]


def assert_rising_tones_in_time(clip, begin: float, until: float) -> None:
    """The sound of ``clip``, cut from second ``begin`` of a ``rising=True`` source (:func:`write_video_with_sound`:
    its second s sounds (s + 1) x 220 Hz), plays each tone at its second of the source, up to ``until``."""
    with av.open(str(clip)) as c:
        rate = c.streams.audio[0].sample_rate
        sound = np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])

    def pitch(seconds):  # the loudest frequency of the clip's [seconds, seconds + 0.5)
        part = sound[int(seconds * rate):int((seconds + 0.5) * rate)]
        return np.fft.rfftfreq(len(part), 1 / rate)[np.abs(np.fft.rfft(part * np.hanning(len(part)))).argmax()]

    checked = 0
    for t in np.arange(0.0, until - begin - 0.5, 0.25):
        second = math.floor(begin + t + 0.05)
        if second == math.floor(begin + t + 0.45):  # not astride a change of tone
            assert pitch(t) == pytest.approx(220 * (1 + second), abs=12), t
            checked += 1
    assert checked >= 3


@pytest.mark.parametrize("name, video, audio, rate, into", [
    ("VID_20230714.mp4", "libx264", "aac", 16000, ".mp4"),
    ("IMG_0042.MOV", "libx264", "aac", 16000, ".mp4"),  # an iPhone's "Most Compatible" H.264
    ("2024-03-01 10-00-00.mkv", "libx264", "aac", 16000, ".mp4"),  # OBS's recording
    ("downloaded.webm", "libvpx-vp9", "libopus", 48000, ".webm"),  # yt-dlp's VP9 and Opus
])
def test_a_moment_in_codecs_browsers_play_is_previewed_as_its_own_packets_in_time_with_its_sound(
        tmp_path, name, video, audio, rate, into):
    """A phone's H.264 in an MP4 or a MOV, a screen recorder's in Matroska, the web's VP9 in a WebM: every browser
    plays these codecs, so the moment's preview is the video's own packets from the keyframe before the cut, in an
    MP4 or a WebM (no decoding, no encoding: what took seconds on two cores takes milliseconds), and the page is told
    where the clip starts, so the player is put at the moment. Its B-frames, its size and its sound come along, the
    sound in time with the pictures (the tone of each second of the source)."""
    from app.media import moment_preview

    frames = np.repeat(indexed_frames(60, 96, 128), 2, axis=0)  # 6 s at 20 fps, each index twice
    src = write_video_with_sound(tmp_path / name, frames, fps=20, video=video, audio=audio, rate=rate, rising=True)
    with av.open(str(src)) as c:
        v = c.streams.video[0]
        keys = [float(p.pts * v.time_base) for p in c.demux(v) if p.is_keyframe]
    clip, begin = moment_preview(str(src), 3.3, 4.0, tmp_path / "cache", tail_s=1.0)
    assert begin == max(k for k in keys if k <= 3.3)  # the keyframe before the cut
    assert clip.suffix == into
    with av.open(str(clip)) as c:
        codecs = {"libx264": "h264", "libvpx-vp9": "vp9", "libopus": "opus"}
        assert [(s.type, s.codec_context.name) for s in c.streams] == [("video", codecs[video]),
                                                                        ("audio", codecs.get(audio, audio))]
        assert (c.streams.video[0].codec_context.width, c.streams.video[0].codec_context.height) == (128, 96)
        shown = [frame_index_of(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
    first = round(begin * 20)
    assert shown[:round((5.0 - begin) * 20)] == [i // 2 for i in range(first, 100)]  # every frame to 5 s, as it was
    source_packets = packets_of(src)
    assert packets_of(clip) == source_packets[first:first + len(packets_of(clip))]  # the very bits
    assert_rising_tones_in_time(clip, begin, 4.5)
    import vtr.data.cut

    def copied_again(*args, **kwargs):
        raise AssertionError("the clip in the cache was copied again")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(vtr.data.cut, "copy_clip", copied_again)
        assert moment_preview(str(src), 3.3, 4.0, tmp_path / "cache", tail_s=1.0) == (clip, begin)  # cached


@pytest.mark.parametrize("name, video, audio, pix_fmt, kind", [
    ("IMG_0043.MOV", "libx265", "aac", "yuv420p", "hevc"),  # an iPhone's "High Efficiency"
    ("download.webm", "libsvtav1", "libopus", "yuv420p10le", "av1.10"),  # the web's AV1, its Opus into AAC
    ("GH5.mp4", "libx264", "aac", "yuv420p10le", "h264.10"),  # a camera's High 10
])
def test_a_moment_in_a_codec_the_browser_said_it_plays_is_copied_for_it(tmp_path, name, video, audio, pix_fmt, kind):
    """HEVC, AV1, 10-bit H.264: browsers that play them (the page asks its own: ``app.ui.PLAYS_JS``) get a moment's
    preview as the video's own packets, in an MP4 (HEVC tagged hvc1, as Safari takes it), milliseconds; the others,
    and a page whose browser showed no pictures of such a copy (``copy=False``), the transcode, as before (seconds on
    two cores for a phone's 1080p moment)."""
    from app.media import PLAYED_IF_SAID, copy_plan, is_copied, kind_of, moment_preview, said_plays

    frames = np.repeat(indexed_frames(60, 96, 128), 2, axis=0)  # 6 s at 20 fps, each index twice
    src = write_video_with_sound(tmp_path / name, frames, fps=20, video=video, audio=audio, rate=48000, rising=True,
                                 pix_fmt=pix_fmt)
    assert kind_of(str(src)) == kind and said_plays(f"vp8 {kind} <b>") == {kind}
    others = frozenset(PLAYED_IF_SAID) - {kind}  # 8 bits for 10 too
    assert copy_plan(str(src)) is None and copy_plan(str(src), others) is None
    assert copy_plan(str(src), frozenset({kind})) == "mp4"
    clip, begin = moment_preview(str(src), 3.3, 4.0, tmp_path / "cache", tail_s=1.0, plays=frozenset({kind}))
    assert is_copied(clip) and clip.suffix == ".mp4" and begin <= 3.3
    with av.open(str(clip)) as c:
        v = c.streams.video[0]
        assert (v.codec_tag, c.streams.audio[0].codec_context.name) == ({"hevc": "hvc1"}.get(kind, v.codec_tag), "aac")
        assert kind_of(str(clip)) == kind
    assert packets_of(clip) == packets_of(src)[round(begin * 20):][:len(packets_of(clip))]  # the very bits
    assert_rising_tones_in_time(clip, begin, 4.8)
    clip, begin = moment_preview(str(src), 3.3, 4.0, tmp_path / "cache", tail_s=1.0, plays=frozenset({kind}),
                                 copy=False)
    assert not is_copied(clip) and begin == 3.3 and kind_of(str(clip)) == "h264"


@pytest.mark.parametrize("transfer", ["hlg", "pq"])
def test_an_hdr_moment_is_copied_for_a_browser_that_shows_that_hdr(tmp_path, monkeypatch, transfer):
    """An iPhone's HDR HEVC (HLG, its default since the iPhone 12), an Android phone's HDR10 (PQ): the browser that
    said it shows that HDR ("hevc.10+hlg": ``app.ui.PLAYS_JS`` asks ``mediaCapabilities``) gets the video's own
    packets, its transfer and BT.2020 kept; one that plays 10-bit HEVC in SDR alone, or the other transfer, gets
    the transcode, tone-mapped to SDR as the model sees it (before: every HDR moment, seconds on two cores). Larger
    than 1080p, copied only for "hevc.10+hlg@4k"."""
    import app.media
    from app.media import copy_plan, is_copied, kind_of, moment_preview
    from tests.videos import write_hdr_video

    src = write_hdr_video(tmp_path / "IMG_0002.MOV", indexed_frames(40, 64, 96), transfer, fps=10)
    kind, other = f"hevc.10+{transfer}", "hevc.10+" + ({"hlg": "pq", "pq": "hlg"}[transfer])
    assert kind_of(str(src)) == kind
    assert copy_plan(str(src)) is None and copy_plan(str(src), frozenset({"hevc.10", "hevc", other})) is None
    assert copy_plan(str(src), frozenset({kind})) == "mp4"
    clip, begin = moment_preview(str(src), 2.0, 3.0, tmp_path / "cache", tail_s=0.0, plays=frozenset({kind}))
    assert is_copied(clip) and packets_of(clip) == packets_of(src)[round(begin * 10):][:len(packets_of(clip))]
    with av.open(str(clip)) as c:
        cc = c.streams.video[0].codec_context
        assert (c.streams.video[0].codec_tag, cc.color_trc, cc.color_primaries) == ("hvc1", {"hlg": 18, "pq": 16}[
            transfer], 9)
    clip, _ = moment_preview(str(src), 2.0, 3.0, tmp_path / "cache", tail_s=0.0, plays=frozenset({"hevc.10"}))
    with av.open(str(clip)) as c:  # tone-mapped: SDR H.264
        cc = c.streams.video[0].codec_context
        assert not is_copied(clip) and (cc.name, cc.color_trc, cc.color_primaries) == ("h264", 1, 1)  # BT.709
    monkeypatch.setattr(app.media, "COPY_MAX_PIXELS", 64 * 96 - 1)
    assert kind_of(str(src)) == kind + "@4k" and copy_plan(str(src), frozenset({kind})) is None
    assert copy_plan(str(src), frozenset({kind, kind + "@4k"})) == "mp4"


def test_a_video_larger_than_1080p_is_copied_for_a_browser_whose_gpu_decodes_it(tmp_path, monkeypatch):
    """A phone's 4K, an action camera's bitrate (here: the limits made smaller than this video's size, then its
    rate): cut to 854 wide for a browser that decodes in software (two cores may not keep up with the source), as
    before; copied for one that said its machine decodes that kind of video in hardware at 4K60 ("h264@4k":
    ``app.ui.PLAYS_JS`` asks ``mediaCapabilities``); never over :data:`app.media.LARGE_MAX_PIXELS` or
    :data:`app.media.LARGE_MAX_BITS`."""
    import app.media
    from app.media import copy_plan, is_copied, kind_of, moment_preview, said_plays

    src = write_video(tmp_path / "GX010001.MP4", indexed_frames(70, 48, 64), fps=10)
    assert kind_of(str(src)) == "h264" and copy_plan(str(src)) == "mp4"
    monkeypatch.setattr(app.media, "COPY_MAX_PIXELS", 64 * 48 - 1)
    assert kind_of(str(src)) == "h264@4k" and said_plays("h264@4k vp8@4k hevc hevc@8k") == {"h264@4k", "hevc"}
    assert copy_plan(str(src)) is None and copy_plan(str(src), frozenset({"hevc@4k", "h264"})) is None
    assert copy_plan(str(src), frozenset({"h264@4k"})) == "mp4"
    clip, begin = moment_preview(str(src), 2.0, 3.0, tmp_path / "cache", tail_s=0.0, plays=frozenset({"h264@4k"}))
    assert is_copied(clip) and packets_of(clip) == packets_of(src)[round(begin * 10):][:len(packets_of(clip))]
    with av.open(str(src)) as c:
        bits = c.bit_rate
    monkeypatch.setattr(app.media, "COPY_MAX_PIXELS", 1920 * 1088)
    monkeypatch.setattr(app.media, "COPY_MAX_BITS", bits - 1)  # an action camera's rate
    assert kind_of(str(src)) == "h264@4k" and copy_plan(str(src), frozenset({"h264@4k"})) == "mp4"
    monkeypatch.setattr(app.media, "LARGE_MAX_BITS", bits - 1)  # over what is ever copied
    assert kind_of(str(src)) is None and copy_plan(str(src), frozenset({"h264@4k"})) is None


@pytest.mark.parametrize("case", ["far keyframe", "vp8 with aac", "hevc", "mpeg-ts", "non-square pixels", "10-bit",
                                  "over 1080p", "over 40 Mbit/s", "trimmed"])
def test_a_moment_whose_packets_cannot_be_taken_as_they_are_is_transcoded(tmp_path, monkeypatch, case):
    """Its keyframe before the cut is more than 10 s before it (a screen recording's), its video is VP8 with sound
    that no container every browser plays VP8 in takes, its video is HEVC (an iPhone's default), its container does
    not index its packets (MPEG-TS), its pixels are not square, it is H.264 in 10 bits (a
    camera's High 10, outside the profiles browsers promise), it is larger than 1080p or its bitrate a camera's (a
    two-core machine's browser may not decode it in time: here the limits are made this video's size and rate), its
    keyframe is one players hide (a video trimmed without re-encoding, at its start): cut to H.264 from the cut on,
    as before."""
    import app.media
    from app.media import moment_preview

    frames = indexed_frames(70, 48, 64)
    if case in ("over 1080p", "over 40 Mbit/s"):
        src = write_video(tmp_path / "drone.mp4", frames, fps=10)
        assert app.media.copy_plan(str(src)) == "mp4"
        with av.open(str(src)) as c:
            bits = c.bit_rate
        monkeypatch.setattr(app.media, "COPY_MAX_PIXELS" if case == "over 1080p" else "COPY_MAX_BITS",
                            64 * 48 - 1 if case == "over 1080p" else bits - 1)
        start = 2.0
    elif case == "trimmed":
        whole = write_video(tmp_path / "whole.mp4", np.repeat(frames, 2, axis=0)[:140], fps=10, gop=20)
        src = write_trimmed_copy(whole, tmp_path / "trimmed.mp4", 1.3)  # its keyframe at 0 hidden, 1.3 s before
        start = 0.0
    elif case == "10-bit":
        src = write_video(tmp_path / "GH5.mp4", frames, fps=10, pix_fmt="yuv420p10le")
        start = 2.0
    elif case == "far keyframe":
        src = write_video(tmp_path / "screen.mp4", np.repeat(frames, 2, axis=0)[:140], fps=10, gop=140)
        start = 12.0
    elif case == "vp8 with aac":
        src = write_video_with_sound(tmp_path / "old.mkv", frames, video="libvpx", audio="aac", rate=48000)
        start = 2.0
    elif case == "hevc":
        src = write_video(tmp_path / "IMG_0043.MOV", frames, fps=10, codec="libx265")
        start = 2.0
    elif case == "mpeg-ts":
        src = write_video(tmp_path / "recording.ts", frames, fps=10)
        start = 2.0
    else:
        src = write_video(tmp_path / "hdv.mp4", frames, fps=10, sample_aspect=Fraction(4, 3))
        start = 2.0
    clip, begin = moment_preview(str(src), start, start + 1.0, tmp_path / "cache", tail_s=0.0)
    assert begin == start and ".copy." not in clip.name
    with av.open(str(clip)) as c:
        shown = [frame_index_of(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
    assert len(shown) == 10


@pytest.mark.parametrize("name, video, audio, into", [
    ("C0001.MOV", "libx264", "pcm_s16le", "h264"),  # a camera's H.264 with PCM sound
    ("call.mp4", "libx264", "libopus", "h264"),  # a call recorder's Opus, which not every browser plays in MP4
    ("film.mkv", "libx264", "ac3", "h264"),  # a film's AC-3
    ("talk.mkv", "libvpx-vp9", "flac", "vp9"),  # VP9 with FLAC: into an MP4, where every browser plays VP9
])
def test_a_moment_whose_sound_browsers_cannot_play_is_copied_with_its_sound_converted_in_time(
        tmp_path, name, video, audio, into):
    """A camera's H.264 with PCM sound (Canon's, Panasonic's, Fujifilm's MOV), a film's AC-3, Opus or FLAC: the
    pictures are in codecs every browser plays, the sound is not (in an MP4). The pictures are copied as their own
    packets, as for a phone's video, and only the sound is decoded and encoded to AAC, in the same pass: each tone
    at its second, muxed beside its pictures (a browser reading the clip as it streams needs both in step), where
    before the whole moment was transcoded, seconds for a 1080p one on two cores."""
    from app.media import copy_plan, moment_preview

    frames = np.repeat(indexed_frames(60, 96, 128), 2, axis=0)  # 6 s at 20 fps, each index twice
    src = write_video_with_sound(tmp_path / name, frames, fps=20, video=video, audio=audio, rate=48000, rising=True)
    assert copy_plan(str(src)) == "mp4"
    with av.open(str(src)) as c:
        v = c.streams.video[0]
        keys = [float(p.pts * v.time_base) for p in c.demux(v) if p.is_keyframe]
    clip, begin = moment_preview(str(src), 3.3, 4.0, tmp_path / "cache", tail_s=1.0)
    assert begin == max(k for k in keys if k <= 3.3) and clip.name.endswith(".copy.mp4")
    with av.open(str(clip)) as c:
        assert [(s.type, s.codec_context.name) for s in c.streams] == [("video", into), ("audio", "aac")]
        order = [(p.stream.type, float(p.pts * p.stream.time_base)) for p in c.demux() if p.size]
    assert packets_of(clip) == packets_of(src)[round(begin * 20):][:len(packets_of(clip))]  # the very bits
    assert_rising_tones_in_time(clip, begin, 4.8)
    seen = {"video": [], "audio": []}  # in the order the file holds them: sound and pictures within a second
    for kind, at in order:
        seen[kind].append(at)
        if seen["video"] and seen["audio"]:
            assert abs(max(seen["video"]) - max(seen["audio"])) < 1.0, order
    assert max(seen["audio"]) >= 4.8 - begin - 0.1
    clip, begin = moment_preview(str(src), 5.0, 5.5, tmp_path / "cache", tail_s=2.0)  # to past its end
    assert clip.name.endswith(".copy.mp4")
    assert_rising_tones_in_time(clip, begin, 6.0)


def write_onset_video(path, audio: str, onset: float = 3.5):
    """6 s of 64x48 H.264 at 20 fps, a keyframe each second, no B-frames, with mono ``audio`` at 48 kHz that is silent
    until a 1 kHz tone starts at ``onset`` seconds; each sound packet muxed ahead of the pictures of its time, as a
    recorder interleaves them (so the one just before a keyframe lies before it in the file)."""
    frames = np.repeat(indexed_frames(60, 48, 64), 2, axis=0)
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=20)
        v.width, v.height, v.pix_fmt, v.options = 64, 48, "yuv420p", {"g": "20", "bf": "0"}
        a = c.add_stream(audio, rate=48000, layout="mono")
        t = np.arange(6 * 48000) / 48000
        wave = np.where(t >= onset, 0.5 * np.sin(2 * np.pi * 1000 * t), 0.0).astype(np.float32)
        sound = []
        for k in range(0, len(wave) - 1023, 1024):
            af = av.AudioFrame.from_ndarray(wave[None, k:k + 1024], format="fltp", layout="mono")
            af.sample_rate, af.pts = 48000, k
            sound += a.encode(af)
        sound += a.encode()
        pictures = [p for f in frames for p in v.encode(av.VideoFrame.from_ndarray(f, format="rgb24"))] + v.encode()
        for p in pictures:
            while sound and sound[0].pts * sound[0].time_base <= p.dts * p.time_base:
                c.mux(sound.pop(0))
            c.mux(p)
        for q in sound:
            c.mux(q)
    return path


def sound_onset(path) -> float:
    """The second the sound of ``path`` first goes over half its tone's level."""
    with av.open(str(path)) as c:
        rate = c.streams.audio[0].sample_rate
        x = np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])
    return np.argmax(np.abs(x) > 0.25) / rate


@pytest.mark.parametrize("audio", ["flac", "ac3"])
def test_a_copied_preview_s_sound_starts_on_time_where_its_first_packet_lies_before_the_keyframe(tmp_path, audio):
    """A film's FLAC or AC-3 in Matroska, its sound muxed ahead of the pictures: the sound packet that starts just
    before the keyframe the clip is copied from lies before it in the file, so the clip's sound begins with the next
    packet, up to a frame (96 ms of FLAC, 32 of AC-3) after the clip's start. That sound was written from the clip's
    start: 72 ms early for FLAC. Now silence comes first, as long as the gap, so each sound is at its time (the
    transcode's too), within 2 ms."""
    from app.media import make_preview, moment_preview

    src = write_onset_video(tmp_path / f"film_{audio}.mkv", audio)
    assert sound_onset(src) == pytest.approx(3.5, abs=0.002)
    clip, begin = moment_preview(str(src), 3.3, 4.0, tmp_path / "cache", tail_s=1.0)
    assert clip.name.endswith(".copy.mp4") and begin == 3.0
    assert sound_onset(clip) == pytest.approx(3.5 - begin, abs=0.002)
    cut = make_preview(str(src), 3.3, 4.0, tmp_path / "cache", tail_s=1.0)
    assert sound_onset(cut) == pytest.approx(3.5 - 3.3, abs=0.002)


def test_a_sound_track_that_stops_decoding_costs_the_copy_not_the_picture(tmp_path):
    """A camera file whose sound is damaged (every packet refused by the decoder) is not copied with a broken
    sound: its preview is the transcode, which plays the pictures without it."""
    from app.media import moment_preview

    good = write_video_with_sound(tmp_path / "good.mkv", indexed_frames(70, 48, 64), video="libx264", audio="ac3",
                                  rate=48000)
    src = tmp_path / "damaged.mkv"
    with av.open(str(good)) as c, av.open(str(src), "w") as out:
        streams = {s: out.add_stream_from_template(s) for s in c.streams}
        for packet in c.demux():
            if packet.size == 0:
                continue
            if packet.stream.type == "audio":  # the same length, no AC-3 sync word
                damaged = av.Packet(bytes(packet.size))
                damaged.pts, damaged.dts, damaged.time_base = packet.pts, packet.dts, packet.time_base
                packet = damaged
                packet.stream = streams[c.streams.audio[0]]
            else:
                packet.stream = streams[packet.stream]
            out.mux(packet)
    clip, begin = moment_preview(str(src), 2.0, 4.0, tmp_path / "cache", tail_s=0.0)
    assert begin == 2.0 and ".copy." not in clip.name
    with av.open(str(clip)) as c:
        shown = [frame_index_of(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
    assert len(shown) == 20


def test_a_copied_preview_keeps_a_portrait_video_upright(tmp_path):
    from app.media import moment_preview

    src = write_video(tmp_path / "portrait.mp4", indexed_frames(30, 64, 128), fps=10, rotation=90)
    clip, begin = moment_preview(str(src), 1.0, 2.0, tmp_path / "cache")
    assert clip.name.endswith(".copy.mp4") and begin == 0.0
    with av.open(str(clip)) as c:
        frame = next(c.decode(video=0))
        assert (frame.width, frame.height, frame.rotation % 360) == (128, 64, 90)


def test_the_preview_cache_keeps_to_its_size(tmp_path):
    """Copied previews are the source's bits (a 4K moment is ~175 MB): the cache drops the oldest beyond its byte
    budget as beyond its count, and keeps the newest whatever its size."""
    from app.media import _prune

    for i, size in enumerate([400, 300, 200, 500]):
        path = tmp_path / f"{i}.mp4"
        path.write_bytes(bytes(size))
        os.utime(path, (1000 + i, 1000 + i))
    _prune(tmp_path, keep=10, max_bytes=900)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2.mp4", "3.mp4"]  # 500 + 200; 300 more is over
    _prune(tmp_path, keep=10, max_bytes=100)
    assert [p.name for p in tmp_path.iterdir()] == ["3.mp4"]


def test_preview_caps_length_and_thumbnail(tmp_path):
    src = write_video(tmp_path / "v.mp4", indexed_frames(60), fps=10)
    clip = make_preview(str(src), 0.0, 6.0, tmp_path / "cache", max_seconds=2.5)
    with av.open(str(clip)) as c:
        assert c.streams.video[0].frames == 25
        assert c.streams.video[0].average_rate == Fraction(10)
    rendered = []

    def render(path, seconds):
        rendered.append((path, seconds))
        return b"\xff\xd8 a jpeg of " + f"{seconds}".encode()

    thumb = make_thumbnail(str(src), 1.0, tmp_path / "cache", render)
    assert thumb.read_bytes() == b"\xff\xd8 a jpeg of 1.0" and thumb.parent == tmp_path / "cache"
    assert make_thumbnail(str(src), 1.0, tmp_path / "cache", render) == thumb  # cached: rendered once
    assert make_thumbnail(str(src), 2.0, tmp_path / "cache", render) != thumb
    assert rendered == [(str(src), 1.0), (str(src), 2.0)]


def test_an_example_clip_a_browser_cannot_play_is_shown_cut_to_h264(tmp_path):
    """An example clip from a camcorder (.MTS), a DVD (.mpg), Windows (.wmv), an old camera (.avi), an iPhone (HEVC
    .MOV) or OBS (.mkv) showed an empty player in one browser or another. The page gets the clip as a moment's
    preview is made, every frame of it: OBS's H.264 copied into an MP4, the others cut to H.264; a file every browser
    plays is shown as it is, and a damaged one too (the search says what is wrong)."""
    from tests.videos import write_hdr_video, write_interlaced_video

    service = IndexService(str(tmp_path / "none.idx"), cache_dir=str(tmp_path / "cache"))
    frames = indexed_frames(30)
    kinds = {"00012.MTS": {"options": {"bf": "3", "g": "12"}}, "VTS_01_1.mpg": {"codec": "mpeg2video"},
             "party.wmv": {"codec": "wmv2"}, "old.avi": {"codec": "mpeg4"}, "IMG_0001.MOV": {"codec": "libx265"},
             "obs.mkv": {}}
    for name, how in kinds.items():
        clip = service.example_clip(str(write_video(tmp_path / name, frames, fps=10, **how)))
        assert clip.startswith(str(service.preview_dir)) and clip.endswith(".mp4"), name
        assert clip.endswith(".copy.mp4") == (name == "obs.mkv"), name
        with av.open(clip) as c:
            assert c.streams.video[0].codec_context.name == "h264"
            shown = [frame_index_of(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
        assert len(shown) == 30 and all(abs(got - want) <= 1 for got, want in zip(shown, range(30))), name
    for name, codec in (("phone.mp4", "libx264"), ("browser.webm", "libvpx-vp9")):
        playable = str(write_video(tmp_path / name, frames, codec=codec))
        assert service.example_clip(playable) == playable, name
    for name, video, audio in (("phone.mp4", "libx264", "aac"), ("browser.webm", "libvpx-vp9", "libopus")):
        playable = str(write_video_with_sound(tmp_path / f"sound_{name}", frames, video=video, audio=audio,
                                              rate=48000))
        assert service.example_clip(playable) == playable, name
    # an MP4 whose sound not every browser plays (AC-3 played silent in Chromium): its pictures copied, its sound AAC
    for audio in ("ac3", "pcm_s16le", "libopus"):
        clip = service.example_clip(str(write_video_with_sound(tmp_path / f"C0002_{audio}.mp4", frames,
                                                               video="libx264", audio=audio, rate=48000)))
        assert clip.startswith(str(service.preview_dir)) and clip.endswith(".copy.mp4"), audio
        with av.open(clip) as c:
            assert [s.codec_context.name for s in c.streams] == ["h264", "aac"], audio
    # H.264 in another container than the name says: a recorder's MPEG-PS (Hikvision's exports), a grabber's MPEG-TS,
    # a DVR's raw stream, each named .mp4: given to the page as they were, they showed an empty player; and the cut of
    # the PS lost the small frames that share a packet with the one before (no time of their own): 12 of 30 were left
    for kind in ("vob", "ts", "h264"):
        misnamed = tmp_path / f"cctv_{kind}.mp4"
        write_video(tmp_path / f"cctv.{kind}", frames, fps=10).rename(misnamed)
        clip = service.example_clip(str(misnamed))
        assert clip.startswith(str(service.preview_dir)), kind
        with av.open(clip) as c:  # every frame (those of the PS that share a packet have no time of their own)
            assert [frame_index_of(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)] == list(range(30)), kind
    # AV1 (a download's .mp4): Safari plays it only where the device decodes it in hardware
    av1 = write_video(tmp_path / "download.mp4", indexed_frames(30, 64, 64), codec="libsvtav1")  # SVT-AV1: >= 64 high
    assert service.example_clip(str(av1)).startswith(str(service.preview_dir))
    # an iPhone's HEVC: its own packets for a browser that said it plays HEVC (marked so, for the page to ask again
    # if it shows no pictures), cut to H.264 for the others and when the page asks again; 8 bits do not stand for 10
    from app.ui import _Handlers

    handlers = _Handlers(service)
    iphone = str(tmp_path / "IMG_0001.MOV")
    for plays, codec in (("hevc h264.10", "hevc"), ("hevc.10", "h264"), ("", "h264")):
        _, clip, _, mark = handlers.on_example(iphone, plays)
        assert (clip["value"].endswith(".copy.mp4"), 'data-copied="1"' in mark) == ((codec == "hevc"),) * 2, plays
        with av.open(clip["value"]) as c:
            assert c.streams.video[0].codec_context.name == codec, plays
            shown = [frame_index_of(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
        assert len(shown) == 30 and all(abs(got - want) <= 1 for got, want in zip(shown, range(30))), plays
    clip, mark, plays = handlers.on_example_unplayed(iphone, "av1 hevc h264@4k")
    assert plays == "av1 h264@4k" and mark == "" and not clip["value"].endswith(".copy.mp4")
    with av.open(clip["value"]) as c:
        assert c.streams.video[0].codec_context.name == "h264"
    hdr = write_hdr_video(tmp_path / "iphone.mov", indexed_frames(10), "hlg")  # tone-mapped, as the model sees it
    interlaced = write_interlaced_video(tmp_path / "camcorder.mkv")  # deinterlaced
    assert all(service.example_clip(str(p)).startswith(str(service.preview_dir)) for p in (hdr, interlaced))
    (tmp_path / "broken.mpg").write_bytes(b"\x00\x00\x01\xba" + b"junk" * 100)
    assert service.example_clip(str(tmp_path / "broken.mpg")) == str(tmp_path / "broken.mpg")


def test_thumbnails_of_an_index_built_without_them_are_cut_from_the_video(tmp_path, app_model):
    from index import build_index

    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "count.mp4", indexed_frames(60), fps=10)  # frame i shows its index
    build_index([str(videos)], str(tmp_path / "idx"), model=app_model, workers=0, progress=False, thumbnails=False)
    service = IndexService(str(tmp_path / "idx"), model=app_model)
    try:
        moment = Moment(str(videos / "count.mp4"), 2.0, 4.0, 0.5, None)
        thumb = service.thumbnail_of(moment)
        assert thumb.startswith(str(service.thumbnail_dir))
        with av.open(thumb) as c:
            assert frame_index_of(next(c.decode(video=0)).to_ndarray(format="rgb24")) == 30  # the middle: 3.0 s
        assert service.duration_of(moment.path) == pytest.approx(6.0, abs=0.15)
        assert service.thumbnail_of(Moment(str(videos / "gone.mp4"), 0.0, 1.0, 0.5, None)) is None
    finally:
        service.close()


def test_helpers():
    assert clock(75.4) == "1:15" and clock(3725) == "1:02:05" and clock(0) == "0:00"
    assert folder_glob("/v/a*b?[c]/") == "/v/a[*]b[?][[]c]/*"
    # a folder as people paste it: in quotes (Windows' "Copy as path"), as a file manager's URL, with ~
    for pasted in ('"/home/me/My Videos"', "'/home/me/My Videos' ", "file:///home/me/My%20Videos",
                   "file:///home/me/My%20Videos/"):
        assert typed_folder(pasted) == "/home/me/My Videos"
    assert typed_folder("~/clips") == os.path.expanduser("~/clips")
    from app.service import _filters

    assert _filters('"/v/trips/"', None, None)["path_glob"] == "/v/trips/*"
    assert _filters("  ", None, None)["path_glob"] is None
    ms = [Moment("a", 0, 8, 0.5, None), Moment("b", 0, 8, 0.9, None), Moment("a", 8, 16, 0.7, None),
          Moment("b", 8, 16, 0.1, None)]
    assert [(m.path, m.score) for m in group_by_video(ms)] == [("b", 0.9), ("b", 0.1), ("a", 0.7), ("a", 0.5)]


def test_service_without_an_index_then_building(tmp_path, app_model):
    from tests.app.conftest import make_collection

    service = IndexService(str(tmp_path / "new.idx"), model=app_model, build_options={"workers": 0})
    try:
        assert not service.exists() and service.status() is None and service.folders() == []
        with pytest.raises(VtrError, match="No index yet"):
            service.search("a dog")
        with pytest.raises(VtrError, match="no index yet"):
            service.build(None)
        with pytest.raises(VtrError, match="not a folder"):
            service.build(str(tmp_path / "nowhere"))
        with pytest.raises(VtrError, match=f"^{tmp_path / 'no such'} is not a folder on this computer"):
            service.build(f"'{tmp_path / 'no such'}'")  # pasted in quotes: named without them
        with pytest.raises(VtrError, match="Type the path of a folder"):
            service.build("  ")
        videos = make_collection(tmp_path / "videos")
        report = service.build(f"  {videos.as_uri()}/ ", progress=False)  # pasted from a file manager
        assert report.total_files == 3 and report.failed == 1
        moments = service.search("a dog", k=5)
        assert moments and all(m.thumbnail for m in moments)
        assert service.folders() == [str(videos), str(videos / "trips")]
        clip, offset = service.preview(moments[0])
        assert clip.startswith(str(service.cache_dir)) and clip.endswith(".mp4")
        assert offset == pytest.approx(min(moments[0].start, 10.0))  # the cut starts up to 10 s before the moment
        with pytest.raises(VtrError, match="Type what"):
            service.search("  ")
        # re-scan: nothing changed
        again = service.build(None, progress=False)
        assert again.added == again.embedded_windows == 0 and again.total_files == 3
        cache = service.cache_dir
    finally:
        service.close()
    assert not cache.exists()


def test_rerank_is_offered_only_for_a_trained_matching_head(built_index, app_model):
    """The Search tab shows the re-rank box only when the index's model says its matching head was trained."""
    import copy

    from app.ui import build_ui

    untrained = copy.deepcopy(app_model)
    untrained.cfg.itm_trained = False
    shown = {}
    for name, model in (("trained", app_model), ("untrained", untrained)):
        service = IndexService(str(built_index), model=model)
        try:
            assert service.can_rerank() is (name == "trained")
            blocks = build_ui(service)
            box = [c for c in blocks.config["components"] if c.get("props", {}).get("elem_id") == "rerank"]
            assert len(box) == 1
            shown[name] = box[0]["props"].get("visible", True)
        finally:
            service.close()
    assert shown == {"trained": True, "untrained": False}


def test_a_bad_precision_flag_fails_when_the_service_starts(tmp_path):
    with pytest.raises(VtrError, match="unknown precision 'half'"):  # not at the first build or example query
        IndexService(str(tmp_path / "idx"), precision="half")


def test_build_summary_says_which_folders_were_not_there():
    from app.ui import _build_summary, literal
    from index.build import BuildReport

    report = BuildReport(index="idx", unchanged=3, total_files=3, missing_roots=["/media/drive/Videos"])
    text = _build_summary(report)
    assert "Not found, so not scanned: " + literal("/media/drive/Videos") in text and "stay in the index" in text
    assert "Not found" not in _build_summary(BuildReport(index="idx"))
    report = BuildReport(index="idx", vanished=["/nas/a.mp4", "/nas/b.mp4"])
    assert ("Gone while being read (a drive or share unplugged?): a.mp4, b.mp4. An update indexes them once they are "
            "back." in _build_summary(report).replace("\\", ""))
    assert "Gone" not in _build_summary(BuildReport(index="idx"))
    report = BuildReport(index="idx", unreadable=[("/nas/trip", "Permission denied")])
    assert ("Could not read /nas/trip (Permission denied): their videos stay in the index as they were."
            in _build_summary(report).replace("\\", ""))


def test_index_tab_marks_a_recorded_folder_that_is_not_there(tmp_path):
    """The folder list of the Index tab said nothing of an unplugged drive; only the build summary did."""
    from app.ui import _status_markdown, literal

    present, gone = tmp_path / "videos", tmp_path / "drive" / "Videos"
    present.mkdir()
    st = {"index": str(tmp_path / "idx"), "manifest": {"model": "m", "index_factory": "Flat"}, "files": 2,
          "hours": 0.1, "windows": 9, "failed": [], "pending": [], "roots": [str(present), str(gone)],
          "missing_roots": [str(gone)]}
    lines = {line for line in _status_markdown(st, tmp_path / "idx").splitlines() if line.startswith("- ")}
    assert lines == {f"- {literal(str(present))}",
                     f"- {literal(str(gone))} · **not found** (not mounted, moved or deleted? its videos stay in "
                     "the index and play again once it is back; `vtr index update --forget-missing` drops them)"}
    # when the last video was indexed (a watch, a cron update: is it still at work?), in this machine's time
    from index.dates import local_time

    st["last_indexed"] = 1.7e9
    assert (f"**2** videos indexed (0.10 h, 9 windows) · the last on {literal(local_time(1.7e9))} ·"
            in _status_markdown(st, tmp_path / "idx"))


def test_index_thread_runs_in_the_callers_context(tmp_path):
    """Gradio finds the page's progress bar through context variables: a re-ranking's tqdm in the index thread
    moves it only if that thread runs in the context of the event being handled."""
    import contextvars

    var = contextvars.ContextVar("event")
    service = IndexService(str(tmp_path / "idx"))
    try:
        var.set("search 1")
        assert service._run(var.get) == "search 1"
        var.set("search 2")
        assert service._run(var.get) == "search 2"
    finally:
        service.close()


def test_quoted_cuts_a_long_query_at_a_space_and_escapes_after_cutting():
    from app.ui import literal, quoted

    assert quoted("  a   dog\nruns ") == "“a dog runs”"
    words = " ".join(["walking"] * 30)
    assert quoted(words, limit=20) == "“walking walking…”"  # cut at the last space within the limit
    assert quoted("x" * 50, limit=20) == "“" + "x" * 20 + "…”"  # no space in its second half: cut at the limit
    assert quoted("*" * 50, limit=10) == "“" + literal("*" * 10) + "…”"  # every kept character still escaped


def test_a_video_and_its_backup_copy_are_one_moment_that_names_the_copy(tmp_path, app_model):
    import shutil

    from index import build_index

    videos = tmp_path / "videos"
    (videos / "backup").mkdir(parents=True)
    write_video(videos / "count.mp4", indexed_frames(60), fps=10)
    shutil.copy(videos / "count.mp4", videos / "backup" / "count.mp4")
    build_index([str(videos)], str(tmp_path / "idx"), model=app_model, workers=0, progress=False,
                window_policy="stride")
    service = IndexService(str(tmp_path / "idx"), model=app_model)
    try:
        moments = service.search("anything", k=10)
        both = {str(videos / "backup" / "count.mp4"), str(videos / "count.mp4")}
        assert moments and len({m.path for m in moments}) == 1
        assert all({m.path, *m.to_dict()["copies"]} == both for m in moments)
    finally:
        service.close()


def test_recording_dates_narrow_searches_and_moments_like_one_and_are_shown(tmp_path, app_model):
    from datetime import datetime

    from app.service import recorded_text
    from app.ui import _Handlers
    from index import build_index
    from tests.index.media import make_video

    videos = tmp_path / "videos"
    make_video(videos / "old.mp4", 6, seed=1, tags={"creation_time": "2019-06-01T10:00:00Z"})
    make_video(videos / "new.mp4", 6, seed=2, tags={"creation_time": "2023-06-01T10:00:00Z"})
    make_video(videos / "VID_20230105_120000.mp4", 6, seed=3)
    build_index([str(videos)], str(tmp_path / "idx"), model=app_model, workers=0, progress=False,
                window_policy="stride")
    service = IndexService(str(tmp_path / "idx"), model=app_model)
    handlers = _Handlers(service)
    try:
        names = lambda moments: sorted({m.name for m in moments})  # noqa: E731
        assert names(handlers.run_search("anything", None, "", "", "", False, 20, "2023", "")) == [
            "VID_20230105_120000.mp4", "new.mp4"]
        assert names(handlers.run_search("anything", None, "", "", "", False, 20, "", "2022")) == ["old.mp4"]
        old = handlers.run_search("anything", None, "", "", "", False, 20, "", "2019-06")[0]
        like = {"video": old.path, "start": old.start, "end": old.end}
        assert names(handlers.run_similar(like, "", "", "", 20, "2023-06", "2023-06")) == ["new.mp4"]
        with pytest.raises(VtrError, match="^Recorded from: '2023-06-31' is not a date"):
            handlers.run_search("anything", None, "", "", "", False, 20, "2023-06-31", "")
        with pytest.raises(VtrError, match="first recording date is after the last"):
            handlers.run_search("anything", None, "", "", "", False, 20, "2023", "2019")
        by_name = {m.name: m for m in service.search("anything", k=20)}
        assert by_name["old.mp4"].to_dict()["recorded_by"] == "metadata"
        stamp = datetime.fromtimestamp(by_name["VID_20230105_120000.mp4"].recorded)
        assert stamp == datetime(2023, 1, 5, 12)
        assert recorded_text(stamp.timestamp(), "name") == "Recorded 2023-01-05 12:00 (from its name)"
        assert recorded_text(stamp.timestamp(), "file").startswith("File date 2023-01-05 12:00 (the video carries")
        assert recorded_text(None, None) == ""
        assert recorded_text(stamp.timestamp(), "name", day_only=True) == "2023-01-05"
        assert recorded_text(stamp.timestamp(), "file", day_only=True) == "2023-01-05 (file date)"
        from app.ui import _grouped_markdown, literal

        grouped = _grouped_markdown([by_name["old.mp4"]])  # the list by video names each video's day
        # (a recording date from the file's tags, a calendar day: not a timing)
        assert literal("old.mp4") in grouped and datetime.fromtimestamp(by_name["old.mp4"].recorded).strftime(
            "%Y-%m-%d") in grouped
    finally:
        service.close()


def test_the_app_watching_its_folders_makes_arrivals_searchable(tmp_path, app_model):
    """``vtr app --watch``: videos that arrive in the index's folders become searchable while the app runs, without
    a reload; the Index tab says it watches; close() ends the watch."""
    from app.ui import _status_markdown
    from tests.app.conftest import make_collection
    from tests.index.media import make_video

    videos = make_collection(tmp_path / "videos")
    service = IndexService(str(tmp_path / "new.idx"), model=app_model, build_options={"workers": 0})
    try:
        with pytest.raises(VtrError, match="more than 0, not 0"):
            service.watch(0)
        from app.server import launch_app

        with pytest.raises(VtrError, match="more than 0, not -5"):  # before anything starts
            launch_app(str(tmp_path / "new.idx"), port=0, model=app_model, watch=-5)
        service.watch(0.1)  # no index yet: the rounds wait for one
        with pytest.raises(VtrError, match="already watching"):
            service.watch(1)
        service.build(str(videos), progress=False)
        before = {m.path for m in service.search("a dog", k=50)}
        assert before == {str(videos / "beach.mp4"), str(videos / "city.mp4"), str(videos / "trips" / "park.mp4")}
        arrived = make_video(videos / "trips" / "lake.mp4", 8, seed=9)
        for _ in range(600):  # at most a minute: a round sees it, the next (it did not change) embeds it
            if service.status()["files"] == 4:
                break
            time.sleep(0.1)
        assert {m.path for m in service.search("a dog", k=50)} == before | {str(arrived)}
        assert "**Watching** its folders: an update 0.1 s after each" in _status_markdown(
            service.status(), service.index_dir, service.watching)
        watcher = service._watcher
    finally:
        service.close()
    assert not watcher.is_alive()


def test_export_all_zips_every_moment_and_says_which_could_not_be_cut(tmp_path, app_model):
    import zipfile

    from tests.app.conftest import make_collection

    videos = make_collection(tmp_path / "videos")
    service = IndexService(str(tmp_path / "idx"), model=app_model, build_options={"workers": 0})
    try:
        service.build(str(videos), progress=False)
        moments = service.search("a dog", k=6)
        with pytest.raises(VtrError, match="Search first"):
            service.export_all([])
        archive, failed = service.export_all(moments, progress=False)
        assert archive.startswith(str(service.cache_dir)) and archive.endswith(f"{len(moments)} moments.zip")
        assert failed == []
        with zipfile.ZipFile(archive) as z:
            names = z.namelist()
            assert len(names) == len(moments) and all(n.endswith(".mp4") for n in names)
            first = tmp_path / "first.mp4"
            first.write_bytes(z.read(names[0]))
        with av.open(str(first)) as c:  # the best moment's span (media time), cut from its video
            assert c.duration / 1e6 == pytest.approx(moments[0].end - moments[0].start, abs=0.15)
            assert c.metadata["comment"] == f"vtr: {moments[0].path} {moments[0].start:.3f}-{moments[0].end:.3f}"
        from index.dates import recorded_at

        assert moments[0].recorded is not None  # the file's time, for these untagged videos
        # dates, not timings (the tag is read back to the second)
        taken = pytest.approx(moments[0].recorded + moments[0].start, abs=1.0)
        assert recorded_at(str(first)) == (taken, "metadata")
        single = service.export(moments[0])  # the one-moment export is dated the same way
        assert recorded_at(single) == (taken, "metadata")
        assert service.export(moments[0]) == single  # asked again: the clip already cut
        # a video moved away since the search: its moments are named, the others zipped
        gone = moments[0].path
        os.rename(gone, tmp_path / "away.mp4")
        archive, failed = service.export_all(moments, progress=False)
        lost = [m for m in moments if m.path == gone]
        said = f"{Path(gone).name} is not there (moved or deleted since it was indexed?)"
        assert failed == [said if len(lost) == 1 else f"{said} ({len(lost)} moments)"]  # once per video
        with zipfile.ZipFile(archive) as z:
            assert len(z.namelist()) == len(moments) - len(lost)
        with pytest.raises(VtrError, match="No moment could be cut"):
            service.export_all(lost, progress=False)
    finally:
        service.close()


def test_a_read_only_index_is_searched_and_the_index_tab_says_it_cannot_change_it(built_index, app_model,
                                                                                  monkeypatch):
    """An index on a read-only mount (or another user's): the app searches it, its Index tab says so before any
    click, an update says why it cannot run, and ``--watch`` is refused at start rather than failing every round."""
    from app.ui import _status_markdown
    from tests.index.test_read_only import deny_writes_under

    deny_writes_under(monkeypatch, built_index)
    service = IndexService(str(built_index), model=app_model, build_options={"workers": 0})
    try:
        assert service.search("a dog", k=3)
        assert "**Read-only here** (this user may not write it): searches work" in _status_markdown(
            service.status(), service.index_dir)
        with pytest.raises(VtrError, match="cannot be changed"):
            service.build(progress=False)
        with pytest.raises(VtrError, match="cannot be changed"):
            service.watch(5)
        assert service.watching is None
    finally:
        service.close()


def test_a_full_disk_under_the_app_s_cache_is_said_as_such(built_index, app_model, tmp_path, monkeypatch):
    """A preview whose cut finds the cache's disk full is not blamed on the video ("cannot make a preview of
    beach.mp4: [Errno 28] ..."): the page says the disk is full, and where."""
    import errno

    import app.media
    import vtr.data.cut
    from app.ui import _message

    def full(path, start, stop, out, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(out))

    monkeypatch.setattr(app.media, "cut_clip", full)  # a transcoded preview
    monkeypatch.setattr(vtr.data.cut, "copy_clip", full)  # a copied one (an H.264 MP4's)
    service = IndexService(str(built_index), model=app_model, cache_dir=str(tmp_path / "cache"))
    try:
        moment = service.search("a dog", k=1)[0]
        with pytest.raises(OSError) as caught:
            service.preview(moment)
        assert _message(caught.value) == (f"No space left on the disk of {tmp_path / 'cache' / 'previews'}: free "
                                          "some space, then try again.")
        assert _message(OSError(errno.ENOSPC, "No space left on device")) == (
            "No space left on the disk of the app's cache: free some space, then try again.")
    finally:
        service.close()


def test_an_example_picture_vtr_cannot_read_is_said_when_it_is_set(tmp_path):
    """A scanner's JPEG-compressed TIFF set as the example: the page showed a broken picture (the browser shows no
    TIFF, and FFmpeg's picture of it is blank) until a search said why. The note says it at once, with no picture;
    a TIFF that reads is shown as the model sees it."""
    from app.ui import _Handlers, literal
    from tests.videos import write_tiff

    handlers = _Handlers(IndexService(str(tmp_path / "none.idx"), cache_dir=str(tmp_path / "cache")))
    red = np.full((48, 64, 3), (200, 40, 40), np.uint8)
    picture, clip, note, mark = handlers.on_example(str(write_tiff(tmp_path / "scan.tif", red, compression=7)))
    assert picture["visible"] is False and clip["visible"] is False and mark == ""
    assert note.startswith(f"The example {literal('scan.tif')} cannot be used: a TIFF compressed with JPEG")
    picture, clip, note, mark = handlers.on_example(None)  # cleared: both emptied (gradio takes each dict's value)
    assert picture is not clip and picture["value"] is None is clip["value"] and note == mark == ""
    picture, clip, note, mark = handlers.on_example(str(write_tiff(tmp_path / "page.tif", red)))
    assert picture["visible"] is True and np.array_equal(picture["value"], red) and "not used" in note


def test_previews_of_a_recording_whose_timestamps_jump_take_the_timing_the_index_found(tmp_path, app_model,
                                                                                      monkeypatch):
    """A TV recording that resumed (its clock jumps 1000 s): its preview after the jump shows the frames there,
    timed by count as the index timed them. The index records which videos are timed so (its copy too), so a
    preview or an export of an indexed video does not read all the packets of a video to find out (one that jumps
    has them read once, to find the keyframe before the moment: vtr.data.video.CountTable)."""
    import vtr.data.video
    from index import build_index
    from tests.videos import write_joined_ts

    videos = tmp_path / "videos"
    videos.mkdir()
    frames = indexed_frames(60)
    write_joined_ts(videos / "recording.ts", [(frames[:30], 0), (frames[30:], 1000)])
    write_video(videos / "phone.mp4", frames, fps=10)
    build_index([str(videos)], str(tmp_path / "idx"), model=app_model, workers=0, progress=False)
    (videos / "backup").mkdir()  # a copy found by a later update takes the windows, and the timing, of the first
    (videos / "backup" / "recording.ts").write_bytes((videos / "recording.ts").read_bytes())
    assert build_index(None, str(tmp_path / "idx"), model=app_model, workers=0, progress=False).copies == 1
    service = IndexService(str(tmp_path / "idx"), model=app_model, cache_dir=str(tmp_path / "cache"))
    try:
        assert [service._timed_by_count(str(p)) for p in (videos / "recording.ts", videos / "backup" / "recording.ts",
                                                          videos / "phone.mp4")] == [True, True, False]
        assert service._timed_by_count(str(tmp_path / "elsewhere.ts")) is None
        import sqlite3  # while a build holds the catalog in a transaction (a watch, the Index tab), it is read as it is

        writer = sqlite3.connect(str(tmp_path / "idx" / "catalog.sqlite"), isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('a build', '1')")
        try:
            assert service._timed_by_count(str(videos / "recording.ts")) is True
        finally:
            writer.execute("ROLLBACK")
            writer.close()
        monkeypatch.setattr(vtr.data.video, "discontinuous", lambda path: pytest.fail(f"{path}'s packets read"))
        for path in (videos / "recording.ts", videos / "phone.mp4"):
            clip, offset = service.preview(Moment(str(path), 4.0, 5.0, 0.5, None), context_s=0.5)
            with av.open(clip) as c:
                shown = [frame_index_of(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
            first = round((4.0 - offset) * 10)  # the TS cut at 3.5 s; the MP4's own packets from its keyframe before
            assert first == (35 if path.suffix == ".ts" else 0) and len(shown) == 55 - first  # to 5.5 s
            assert all(abs(got - want) <= 1 for got, want in zip(shown, range(first, 55))), path
    finally:
        service.close()
