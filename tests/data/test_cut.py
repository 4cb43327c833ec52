"""Cutting moments into files (``vtr search --export``): each span of its own video, named after it, nothing
overwritten, a failed one said while the others are written."""

import os
from fractions import Fraction

import av
import numpy as np
import pytest

from tests.videos import frame_index_of, indexed_frames, write_interlaced_video, write_video
from vtr.data.cut import export_clips, export_name
from vtr.errors import VtrError


def shown_frames(path) -> list[int]:
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        return [frame_index_of(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]


def test_export_cuts_each_span_and_never_overwrites(tmp_path):
    for folder in ("home", "trip"):
        (tmp_path / folder).mkdir()
    a = write_video(tmp_path / "home" / "beach.mp4", indexed_frames(60), fps=10)  # 6 s at 10 fps
    b = write_video(tmp_path / "trip" / "beach.mp4", indexed_frames(60)[::-1].copy(), fps=10)  # the same name
    out = tmp_path / "clips"
    spans = [(str(a), 2.0, 3.0), (str(b), 2.0, 3.0), (str(tmp_path / "gone.mp4"), 0.0, 1.0), (str(a), 30.0, 31.0)]
    done = export_clips(spans, out)
    first, second = out / "beach 0m02s-0m03s.mp4", out / "beach 0m02s-0m03s (2).mp4"
    assert [clip for clip, _ in done] == [str(first), str(second), None, None]
    assert done[2][1] == "gone.mp4 is not there (moved or deleted since it was indexed?)"
    assert "no frames of beach.mp4 between 30.0 s and 31.0 s" in done[3][1]
    # each clip holds its own video's span, every frame once (grey levels after two lossy encodes: +-1)
    got_a, got_b = shown_frames(first), shown_frames(second)
    assert len(got_a) == len(got_b) == 10
    assert all(abs(got - want) <= 1 for got, want in zip(got_a, range(20, 30)))
    assert all(abs(got - want) <= 1 for got, want in zip(got_b, range(39, 29, -1)))
    with av.open(str(second)) as c:
        assert c.metadata["comment"] == f"vtr: {b} 2.000-3.000"
    # run again: the clips are found and kept, not written a second time under new names
    stamps = {p: os.stat(p).st_mtime_ns for p in (first, second)}
    assert export_clips(spans[:2], out) == done[:2]
    assert sorted(p.name for p in out.iterdir()) == sorted([first.name, second.name])
    assert {p: os.stat(p).st_mtime_ns for p in (first, second)} == stamps
    # a file of the user's under that name is left alone
    first.write_bytes(b"my own notes")
    assert export_clips(spans[:1], out)[0][0] == str(out / "beach 0m02s-0m03s (3).mp4")
    assert first.read_bytes() == b"my own notes"


def test_export_into_a_folder_that_cannot_be_made_says_so(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(VtrError, match="cannot export into"):
        export_clips([], tmp_path / "file" / "clips")


def test_export_names_read_as_times():
    assert export_name("/v/Beach day.mov", 64.2, 72) == "Beach day 1m04s-1m12s.mp4"
    assert export_name("/v/a:b?.mp4", 3600, 3725) == "a_b_ 1h00m00s-1h02m05s.mp4"


def test_a_clip_is_dated_when_its_moment_was_recorded(tmp_path):
    """A photo library or an editor files an exported moment by its creation_time (or, lacking one, its file's
    time): the moment's own, the video's recording time plus the moment's start, not the day of the export."""
    from index.dates import recorded_at

    src = write_video(tmp_path / "a.mp4", indexed_frames(60), fps=10)
    taken = 1689341412.0  # 2023-07-14 13:30:12 UTC
    [(dated, _), (undated, _)] = export_clips([(str(src), 2.0, 3.0, taken), (str(src), 4.0, 5.0, None)],
                                              tmp_path / "out")
    assert recorded_at(dated) == (taken + 2.0, "metadata")  # read back as the index reads a video's date
    assert os.stat(dated).st_mtime == taken + 2.0
    with av.open(undated) as c:
        assert "creation_time" not in c.metadata


def _combing(rgb) -> float:
    """How far each row is from the mean of its neighbours: large where two fields of a moving edge interleave."""
    grey = rgb.astype(np.float64).mean(-1)
    return float(np.abs(grey[1:-1] - (grey[:-2] + grey[2:]) / 2).mean())


def test_a_recording_started_between_keyframes_is_cut_on_the_index_seconds(tmp_path):
    """The index counts a recording's seconds from its first frame shown (its first frames cannot be decoded: a TV
    tuner's recording); a preview or an export of a moment holds that moment. Before, the cut counted from the
    stream's first timestamp, half a second of frames that never show earlier: each clip began that much late."""
    from tests.videos import write_cut_in_recording

    path = write_cut_in_recording(tmp_path / "tv.ts", indexed_frames(75), fps=25, keyint=25)
    (clip, error), = export_clips([(str(path), 0.4, 1.2)], tmp_path / "clips")
    assert error is None
    got = shown_frames(clip)
    assert len(got) == 20 and all(abs(g - w) <= 1 for g, w in zip(got, range(35, 55)))  # the reader's 10 to 29


@pytest.mark.parametrize("name, codec", [("android.mp4", "libx264"), ("camera.avi", "mjpeg")])
def test_a_full_range_video_is_cut_at_the_levels_it_shows(tmp_path, name, codec):
    """A full-range source (an Android phone's H.264, an old camera's or a webcam's MJPEG: 0-255, where broadcast
    video is 16-235) cut into H.264: players show the clip at the source's levels. Before, its YUV went into the clip
    unconverted, which players take as limited range: the app's previews and the exports crushed the shadows and
    clipped the highlights (grey 20 shown as 2)."""
    from vtr.data.cut import cut_clip

    src = write_video(tmp_path / name, indexed_frames(50, height=32, width=32), codec=codec, pix_fmt="yuvj420p")

    def levels(path):  # the mean of each frame's top half, as a player converts it to RGB
        with av.open(str(path)) as c:
            return [float(f.to_ndarray(format="rgb24")[:16].mean()) for f in c.decode(video=0)]

    shown = levels(src)
    assert shown[0] < 25 and shown[-1] > 160  # dark and bright frames
    cut_clip(str(src), 0.0, 2.0, tmp_path / "cut.mp4")
    cut = levels(tmp_path / "cut.mp4")
    assert len(cut) == 50 and max(abs(a - b) for a, b in zip(cut, shown)) < 2.5, list(zip(cut, shown))


def _painted(path, width, height, codec="libx264", pix_fmt="yuv420p", matrix="ITU709", full=False, tags=None):
    """A second of a red and a green half (200,30,30 | 30,160,60) in YUV of ``matrix``, tagged ``tags`` (matrix,
    primaries, transfer) or not at all, as phones, cameras and screen recorders write them."""
    im = np.zeros((height, width, 3), np.uint8)
    im[:, :width // 2], im[:, width // 2:] = (200, 30, 30), (30, 160, 60)
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=10)
        s.width, s.height, s.pix_fmt = width, height, pix_fmt
        s.options = {"crf": "8", "preset": "ultrafast"} if codec == "libx264" else {}
        if codec != "libx264":
            s.bit_rate = 8_000_000
        if tags:
            s.codec_context.colorspace, s.codec_context.color_primaries, s.codec_context.color_trc = tags
        for i in range(10):
            f = av.VideoFrame.from_ndarray(im, format="rgb24")
            if pix_fmt != "rgb24":
                f = f.reformat(format=pix_fmt, dst_colorspace=matrix, dst_color_range="JPEG" if full else "MPEG")
            f.pts = i
            for packet in s.encode(f):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    return path


def _as_a_browser_shows(path) -> tuple:
    """The red and green halves of ``path``'s first frame as Chromium shows them (measured with Chromium 2026-12-06):
    in the matrix its stream says, where it says matrix, primaries and transfer; an untagged stream (or one that says
    a matrix alone) as BT.709 from 1280x720 up, BT.601 below."""
    with av.open(str(path)) as c:
        cc = c.streams.video[0].codec_context
        frame = next(c.decode(video=0))
    tagged = 2 not in (cc.colorspace, cc.color_primaries, cc.color_trc)
    matrix = cc.colorspace if tagged else (1 if frame.width >= 1280 or frame.height > 576 else 6)
    rgb = frame.reformat(format="rgb24", src_colorspace=matrix).to_ndarray().astype(int)
    h, w = rgb.shape[:2]
    return tuple(rgb[h // 2, w // 4]), tuple(rgb[h // 2, 3 * w // 4])


@pytest.mark.parametrize("name, size, kwargs", [
    ("phone.mp4", (1920, 1080), {"tags": (1, 1, 1)}),  # an iPhone's, a Pixel's: BT.709, said so
    ("untagged.mp4", (1920, 1080), {}),  # BT.709, as players take HD that says nothing
    ("android.mp4", (1920, 1080), {"matrix": "ITU601", "tags": (6, 6, 6)}),  # some Android phones: BT.601 HD
    ("sd.mp4", (640, 480), {"matrix": "ITU601"}),  # BT.601, as players take SD that says nothing
    ("camera.mov", (1280, 720), {"codec": "mjpeg", "pix_fmt": "yuvj420p", "matrix": "ITU601", "full": True}),
    ("screen.mov", (1280, 720), {"codec": "qtrle", "pix_fmt": "rgb24"}),  # a screen recording in RGB
])
def test_a_cut_is_shown_in_the_colours_of_its_source(tmp_path, name, size, kwargs):
    """A preview (854 wide) and an export (1920) of sources in the colours phones, cameras and screen recorders write,
    shown by a browser within 4 levels of what was painted. The cut copies the source's YUV, so it says the source's
    colours (or, for a source that says none, what players take it to be by its size). Before, it said none: Chromium
    took the 854x480 preview of an HD phone video (BT.709) as BT.601, a red 200,30,30 shown as 186,12,32, and an HD
    export of a BT.601 Android video as BT.709; an MJPEG camera's full range was crushed."""
    from vtr.data.cut import cut_clip

    src = _painted(tmp_path / name, *size, **kwargs)
    for width in (854, 1920):
        cut_clip(str(src), 0.0, 0.5, tmp_path / f"cut{width}.mp4", max_width=width)
        red, green = _as_a_browser_shows(tmp_path / f"cut{width}.mp4")
        assert max(abs(a - b) for a, b in zip(red + green, (200, 30, 30, 30, 160, 60))) <= 4, (width, red, green)


def _with_tones(path, tones, seconds: float = 3.0):
    """An MP4 or MKV of ``seconds`` of indexed frames (10 fps) and a sound track per ``(hz, disposition, on)`` of
    ``tones``: a tone sounding over the spans ``on`` [(from, to) seconds], no sound (no packets) between them."""
    with av.open(str(path), "w") as c:
        video = c.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.options = {"crf": "10", "preset": "ultrafast"}
        tracks = [(c.add_stream("aac", rate=16000, layout="mono"), hz, on) for hz, _, on in tones]
        for (stream, _, _), (_, disposition, _) in zip(tracks, tones):
            stream.disposition = disposition
        for i, frame in enumerate(indexed_frames(int(seconds * 10))):
            f = av.VideoFrame.from_ndarray(frame, format="rgb24")
            f.pts = i
            for packet in video.encode(f):
                c.mux(packet)
        for packet in video.encode():
            c.mux(packet)
        for stream, hz, on in tracks:
            for a, b in on:
                for k in range(int(a * 16000), int(b * 16000), 1024):
                    tone = 0.3 * np.sin(2 * np.pi * hz * np.arange(k, k + 1024) / 16000)
                    f = av.AudioFrame.from_ndarray(tone.astype(np.float32)[None], format="fltp", layout="mono")
                    f.sample_rate, f.pts = 16000, k
                    for packet in stream.encode(f):
                        c.mux(packet)
            for packet in stream.encode():
                c.mux(packet)
    return path


def _loudness(clip, step: float = 0.1) -> list[float]:
    """The mean loudness of each ``step`` seconds of ``clip``'s sound, as it is laid out (from its first sample)."""
    with av.open(str(clip)) as c:
        rate = c.streams.audio[0].sample_rate
        sound = np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])
    n = int(step * rate)
    return [float(np.abs(sound[i:i + n]).mean()) for i in range(0, len(sound) - n + 1, n)]


def test_a_cut_plays_the_sound_a_player_plays(tmp_path):
    """A video with two sound tracks, the first an audio description for the visually impaired (as broadcasts carry
    it beside the programme's sound), the second marked default: the cut plays the default one, as players do.
    Before, it took the first track, whichever it was."""
    from tests.data.test_video import _cut_frames_and_pitch
    from vtr.data.cut import cut_clip

    path = _with_tones(tmp_path / "broadcast.mkv", [(880, av.stream.Disposition.visual_impaired, [(0, 2)]),
                                                    (440, av.stream.Disposition.default, [(0, 2)])], seconds=2)
    cut_clip(str(path), 0.5, 1.5, tmp_path / "cut.mp4")
    shown, pitch = _cut_frames_and_pitch(tmp_path / "cut.mp4")
    assert len(shown) == 10 and all(abs(got - want) <= 1 for got, want in zip(shown, range(5, 15)))
    assert pitch(0.2, 0.8) == pytest.approx(440, abs=10)


def test_a_cut_keeps_its_sound_in_time_where_the_sound_starts_late_or_stops(tmp_path):
    """A recording whose sound starts 1 s after its pictures (a screen recorder's microphone), and one whose sound
    stops from 1.0 to 1.5 s (a broadcast's dropout): the cut's sound is silent there and sounds where the source
    does. Before, the sound's frames were written one after the other from the clip's start: the first clip's sound
    came 1 s early, the second's half a second early after the dropout."""
    from vtr.data.cut import cut_clip

    for name, on, cut, silent in (("late.mp4", [(1.0, 3.0)], (0.0, 3.0), [(0.0, 1.0)]),
                                  ("dropout.mp4", [(0.0, 1.0), (1.5, 3.0)], (0.0, 3.0), [(1.0, 1.5)]),
                                  ("dropout.mp4", [(0.0, 1.0), (1.5, 3.0)], (1.2, 2.6), [(0.0, 0.3)])):
        path = _with_tones(tmp_path / name, [(440, av.stream.Disposition.default, on)])
        cut_clip(str(path), *cut, tmp_path / "cut.mp4")
        loud = _loudness(tmp_path / "cut.mp4")
        assert len(loud) >= round((cut[1] - cut[0]) * 10) - 1, loud  # sound to the end of the clip
        for i, level in enumerate(loud):
            t = (i + 0.5) / 10  # the middle of the tenth of a second, in the clip
            quiet = any(a + 0.05 < t < b - 0.05 for a, b in silent)
            loud_there = not any(a - 0.05 < t < b + 0.05 for a, b in silent)
            assert (level < 0.01) if quiet else (level > 0.05 if loud_there else True), (name, cut, t, loud)


def _flashes_and_beeps(path, times, flashes, rate: int = 48000, sound_codec: str = "aac", options=None):
    """An MP4 (or a MOV, ...: ``path``'s suffix) whose frames are shown at ``times`` (seconds; a variable rate where
    they are uneven), white at ``flashes`` and black elsewhere, with a 40 ms beep starting at each flash (AAC at
    ``rate``, or ``sound_codec``: ``pcm_s16le``, a camera's). ``options``: x264's (default: ultrafast)."""
    from fractions import Fraction

    pcm = sound_codec.startswith("pcm_")
    with av.open(str(path), "w") as c:
        video = c.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.options = options or {"preset": "ultrafast"}
        video.codec_context.time_base = Fraction(1, 90000)
        sound = c.add_stream(sound_codec, rate=rate, layout="mono")
        for t in times:
            white = any(abs(t - f) < 1e-6 for f in flashes)
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 255 if white else 0, np.uint8), format="rgb24")
            f.pts, f.time_base = int(round(t * 90000)), Fraction(1, 90000)
            for packet in video.encode(f):
                c.mux(packet)
        for packet in video.encode():
            c.mux(packet)
        for k in range(0, int((times[-1] + 0.1) * rate), 1024):
            t = np.arange(k, k + 1024) / rate
            beep = np.any([(t >= f) & (t < f + 0.04) for f in flashes], axis=0)
            wave = (0.5 * np.sin(2 * np.pi * 1000 * t) * beep).astype(np.float32)[None]
            f = av.AudioFrame.from_ndarray((wave * 32767).astype(np.int16) if pcm else wave,
                                           format="s16" if pcm else "fltp", layout="mono")
            f.sample_rate, f.pts = rate, k
            for packet in sound.encode(f):
                c.mux(packet)
        for packet in sound.encode():
            c.mux(packet)
    return path


def _flash_and_beep_times(clip) -> tuple[list, list]:
    """The times of ``clip``'s white frames and of the starts of its beeps, in seconds."""
    with av.open(str(clip)) as c:
        flashes = [float(f.time) for f in c.decode(video=0) if f.to_ndarray(format="gray").mean() > 128]
    with av.open(str(clip)) as c:
        frames = list(c.decode(audio=0))
        level = np.abs(np.concatenate([f.to_ndarray()[0] for f in frames])) > 0.1
        out_rate, t0 = frames[0].sample_rate, float(frames[0].time)
    onsets = [t0 + i / out_rate for i in np.flatnonzero(level[1:] & ~level[:-1]) + 1]
    return flashes, [t for i, t in enumerate(onsets) if i == 0 or t - onsets[i - 1] > 0.2]


@pytest.mark.parametrize("rate", [48000, 44100])
def test_a_cut_keeps_sound_and_pictures_together(tmp_path, rate):
    """A flash and a beep together at 1.0 s and 2.48 s of a 25 fps video, cut from 0.37 s and 0.9 s (between frames,
    and inside a sound frame): in the clip, each beep starts within 2 ms of its flash. Before, the sound's first
    frame was taken whole from before the cut, and the pictures were laid on a grid of frames from the cut's second,
    not from their own: the beeps came 16 ms early or 12 ms late."""
    from vtr.data.cut import cut_clip

    path = _flashes_and_beeps(tmp_path / "flash.mp4", np.arange(100) / 25, [1.0, 2.48], rate)
    for start in (0.37, 0.9):
        cut_clip(str(path), start, 3.5, tmp_path / "cut.mp4")
        flashes, beeps = _flash_and_beep_times(tmp_path / "cut.mp4")
        assert len(flashes) == len(beeps) == 2, (flashes, beeps)
        assert all(abs(b - f) < 0.002 for b, f in zip(beeps, flashes)), (start, flashes, beeps)


def test_a_variable_rate_video_is_cut_with_its_sound_in_time(tmp_path):
    """A phone's variable-rate video (5 s at 30 fps, 5 s at 15, 5 s at 30: 25 on average) with a flash and a beep
    together at 4.5, 9.0 and 14.5 s: in the clip, each beep starts within 2 ms of its flash, as a preview (at most
    30 fps) and as an export. Before, the frames were put on a grid of the average rate, each in the next free
    place: the pictures of the 30 fps stretches ran 0.9 s behind the sound."""
    from vtr.data.cut import cut_clip

    times = np.concatenate([np.arange(150) / 30, 5 + np.arange(75) / 15, 10 + np.arange(150) / 30])
    path = _flashes_and_beeps(tmp_path / "phone.mp4", times, [4.5, 9.0, 14.5])
    for max_rate in (30, None):
        cut_clip(str(path), 0.0, 15.0, tmp_path / "cut.mp4", max_rate=max_rate)
        flashes, beeps = _flash_and_beep_times(tmp_path / "cut.mp4")
        assert len(flashes) == len(beeps) == 3, (flashes, beeps)
        assert all(abs(b - f) < 0.002 for b, f in zip(beeps, flashes)), (max_rate, flashes, beeps)


def test_a_preview_of_a_60_fps_video_keeps_every_other_frame_on_time(tmp_path):
    """``max_rate=30`` (the app's previews): a 60 fps video's clip holds every other frame, each at its own time,
    and an export (no ``max_rate``) every frame."""
    from vtr.data.cut import cut_clip

    src = write_video(tmp_path / "sixty.mp4", indexed_frames(60, height=96, width=128), fps=60,
                      options={"crf": "4", "preset": "ultrafast"})
    cut_clip(str(src), 0.1, 0.9, tmp_path / "preview.mp4", max_rate=30)
    with av.open(str(tmp_path / "preview.mp4")) as c:
        assert c.streams.video[0].average_rate == 30
        shown = [(float(f.time), frame_index_of(f.to_ndarray(format="rgb24"))) for f in c.decode(video=0)]
    assert [i for _, i in shown] == list(range(6, 54, 2))
    assert all(abs(t - (i - 6) / 60) < 1e-3 for t, i in shown)
    cut_clip(str(src), 0.1, 0.9, tmp_path / "export.mp4")
    assert shown_frames(tmp_path / "export.mp4") == list(range(6, 54))


def test_interlaced_video_is_deinterlaced_in_the_cut(tmp_path):
    """A 1080i camcorder clip cut as it was decoded combed every moving edge in the (progressive) H.264 file, which
    players then show as it is; players deinterlace the source, and so does the cut now."""
    from vtr.data.cut import cut_clip

    src = write_interlaced_video(tmp_path / "camcorder.mts")
    with av.open(str(src)) as c:
        frames = list(c.decode(video=0))
        assert all(f.interlaced_frame for f in frames)
        combed = np.mean([_combing(f.to_ndarray(format="rgb24")) for f in frames])
    out = tmp_path / "cut.mp4"
    cut_clip(str(src), 0.0, 0.8, out, max_width=160)
    with av.open(str(out)) as c:
        cut = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(cut) == 20  # every frame of the 0.8 s at 25 fps, the one bwdif holds back included
    assert combed > 3 and np.mean([_combing(f) for f in cut]) < 0.1 * combed
    progressive = write_video(tmp_path / "phone.mp4", indexed_frames(10), fps=10)
    cut_clip(str(progressive), 0.0, 1.0, tmp_path / "p.mp4")  # progressive frames: not filtered, as before
    assert shown_frames(tmp_path / "p.mp4") == list(range(10))


def test_interlaced_frames_are_read_deinterlaced(tmp_path):
    """The readers behind the index's windows and thumbnails: an interlaced frame is deinterlaced on its own (the
    reader jumps between frames), at full size and scaled on the way."""
    from vtr.data.video import open_video

    src = write_interlaced_video(tmp_path / "camcorder.mts")
    with av.open(str(src)) as c:
        combed = np.mean([_combing(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)])
    with open_video(str(src), backend="pyav") as reader:
        full = reader.get_frames(list(range(0, 20, 3))).numpy()
        small = reader.get_frames([5, 9], size=(80, 60)).numpy()
    assert combed > 3
    assert np.mean([_combing(f) for f in full]) < 0.1 * combed and np.mean([_combing(f) for f in small]) < 0.2 * combed


def test_auto_reads_interlaced_video_deinterlaced_where_decord_would_not(tmp_path):
    """Evaluation, shards and training open videos with "auto", which read an interlaced H.264 MKV (decord's kind of
    file) with decord: combed, as stored. It is read with PyAV now, deinterlaced as the index reads it."""
    pytest.importorskip("decord")
    from vtr.data.video import decord_unsuited, open_video

    src = write_interlaced_video(tmp_path / "camcorder.mkv")
    with open_video(str(src), backend="decord") as reader:
        combed = np.mean([_combing(f) for f in reader.get_frames(list(range(0, 20, 3))).numpy()])
    assert "interlaced" in decord_unsuited(str(src))
    with open_video(str(src)) as reader:
        assert reader.backend == "pyav"
        shown = np.mean([_combing(f) for f in reader.get_frames(list(range(0, 20, 3))).numpy()])
    assert combed > 3 and shown < 0.1 * combed


def test_packets_without_a_decoding_time_get_one_before_the_next_known_as_ffmpeg_copy_gives_it():
    """Matroska stores no decoding times; FFmpeg's demuxer gives none to the first packets of a stream with B-frames
    (after a seek too), and the MP4 muxer refuses them (a preview copied from an OBS recording): they get times a
    frame apart before the first one known, between two known ones, or after the last one at the end, never after
    their own presentation time, in order."""
    from fractions import Fraction
    from types import SimpleNamespace

    from vtr.data.cut import _with_dts

    video = SimpleNamespace(average_rate=Fraction(20), time_base=Fraction(1, 1000))  # a frame is 50 ticks
    sound = SimpleNamespace()

    def packets(*times):
        return [SimpleNamespace(stream=video if s == "v" else sound, pts=p, dts=d) for s, p, d in times]

    given = packets(("v", 1000, None), ("a", 990, 990), ("v", 1200, None), ("v", 1100, 1000), ("v", 1050, 1050),
                    ("v", 1400, None), ("v", 1300, None), ("v", 1250, 1200), ("v", 1600, None))
    out = list(_with_dts(given, video))
    frames = [p for p in out if p.stream is video]
    assert [p.dts for p in frames] == [900, 950, 1000, 1050, 1100, 1150, 1200, 1250]
    assert all(p.dts <= p.pts for p in frames) and sorted(map(id, out)) == sorted(map(id, given))
    assert out[0].stream is sound  # other streams pass at once


def _decoded(path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_an_export_of_h264_is_its_own_packets_showing_the_span_asked_for(tmp_path):
    """A phone's H.264 with B-frames and a keyframe every 2.5 s, exported from 3.3 s (between keyframes) to 5.7 s:
    the clip is the source's own packets, decoded to the very pixels the source decodes to, showing exactly the
    frames of [3.3, 5.7) (the frames from the keyframe to 3.3 s hidden by its edit list, those decoded after 5.7 s
    to show the last ones cut off by it), with its sound (copied), its display rotation and its date. Before, an
    export was transcoded (seconds for a 1080p moment on two cores, and a generation of quality lost)."""
    import shutil

    from vtr.data.cut import export_clips, exported_as_is

    src = write_video(tmp_path / "phone.mp4", indexed_frames(70), fps=10, rotation=90, audio_seconds=7,
                      options={"preset": "veryfast", "bf": "3", "g": "25", "crf": "18"})
    assert exported_as_is(str(src))
    source = _decoded(src)
    taken = 1689341412.0
    [(clip, error)] = export_clips([(str(src), 3.3, 5.7, taken)], tmp_path / "out")
    assert error is None
    with av.open(clip) as c:
        assert [s.codec_context.name for s in c.streams] == ["h264", "aac"]
        assert c.metadata["comment"] == f"vtr: {src} 3.300-5.700"
        assert c.metadata["creation_time"].startswith("2023-07-14T13:30:15")  # MP4 keeps whole seconds
        assert float(c.duration / av.time_base) == pytest.approx(2.4, abs=0.002)
        rotation = next(c.decode(video=0)).rotation
    assert rotation % 360 == 90
    shown = _decoded(clip)
    assert [frame_index_of(f) for f in shown] == list(range(33, 57))
    assert all(np.array_equal(a, b) for a, b in zip(shown, source[33:57]))  # not re-encoded: the same pixels
    # a 10-bit camera's H.264, non-square pixels, and a video wider than exports keep are transcoded, as before
    for name, kwargs in (("camera.mp4", {"pix_fmt": "yuv420p10le", "options": {"preset": "ultrafast"}}),
                         ("hdv.mp4", {"sample_aspect": Fraction(4, 3)})):
        other = write_video(tmp_path / name, indexed_frames(30), fps=10, **kwargs)
        assert not exported_as_is(str(other))
    wide = write_video(tmp_path / "wide.mp4", indexed_frames(30, 48, 96), fps=10)
    assert not exported_as_is(str(wide), max_width=64)
    [(clip, error)] = export_clips([(str(wide), 1.0, 2.0)], tmp_path / "out", max_width=64)
    with av.open(clip) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (64, 32)
    # and a video whose timestamps jump (the index knows), which the copy would show out of order
    shutil.copy(src, tmp_path / "jumps.mp4")
    [(clip, error)] = export_clips([(str(tmp_path / "jumps.mp4"), 3.3, 5.7)], tmp_path / "out",
                                   timed_by_count=lambda path: True)
    assert not any(np.array_equal(a, b) for a, b in zip(_decoded(clip), source[33:57]))  # transcoded


@pytest.mark.parametrize("name, codec, kwargs", [
    ("IMG_0001.MOV", "libx265", {"pix_fmt": "yuv420p10le", "options": {"x265-params": "log-level=error:bframes=3"}}),
    ("C0001.MP4", "libx264", {"pix_fmt": "yuv422p10le", "options": {"preset": "ultrafast", "crf": "10"}}),  # 4:2:2
    ("hdv.mp4", "libx264", {"sample_aspect": Fraction(4, 3)}),  # non-square pixels
    ("drone.mp4", "libx264", {}),  # wider than this export keeps (64)
    ("download.webm", "libvpx-vp9", {}),  # VP9, its Opus sound into AAC
])
def test_an_export_as_recorded_is_the_videos_own_packets_whatever_their_codec_and_size(tmp_path, name, codec, kwargs):
    """``export_as="recorded"``: an iPhone's 10-bit HEVC, a camera's 4:2:2 H.264, HDV's non-square pixels, a video
    wider than exports keep, VP9 from the web: the moment [1.25, 3.5) is the source's own packets, showing exactly
    the frames of the span, pixel for pixel the source's, in its size and pixel shape, with its sound, named and
    tagged as recorded (an export of the same span the other way into the same folder is another clip). As "h264",
    each is transcoded to H.264 up to ``max_width``, as before."""
    from vtr.data.cut import export_clips, exported_as_is
    from vtr.data.video import pixel_aspect_of

    webm = name.endswith(".webm")
    src = write_video(tmp_path / ("vp9.mp4" if webm else name), indexed_frames(60, 96, 128), fps=10, codec=codec,
                      audio_seconds=6, **kwargs)
    if webm:  # the web's, with Opus sound
        src = _with_opus(src, tmp_path / name)
    assert not exported_as_is(str(src), max_width=64) and exported_as_is(str(src), 64, export_as="recorded")
    source = _decoded(src)
    [(clip, error)] = export_clips([(str(src), 1.25, 3.5)], tmp_path / "out", max_width=64, export_as="recorded")
    assert error is None
    with av.open(str(src)) as c:
        v = c.streams.video[0]
        want = (v.codec_context.name, v.codec_context.pix_fmt, v.codec_context.width, pixel_aspect_of(v))
    with av.open(clip) as c:
        v = c.streams.video[0]
        assert (v.codec_context.name, v.codec_context.pix_fmt, v.codec_context.width, pixel_aspect_of(v)) == want
        assert c.streams.audio[0].codec_context.name == "aac"
        assert c.metadata["comment"] == f"vtr: {src} 1.250-3.500 as recorded"
        assert float(c.duration / av.time_base) == pytest.approx(2.2, abs=0.002)  # from its frame at 1.3 s
        if name.endswith(".MOV"):
            assert v.codec_tag == "hvc1"
    shown = _decoded(clip)
    assert len(shown) == 22 and not any(np.array_equal(a, b) for a, b in zip(source[12:34], source[13:35]))
    assert all(np.array_equal(a, b) for a, b in zip(shown, source[13:35]))  # not re-encoded: the same pixels
    [(other, error)] = export_clips([(str(src), 1.25, 3.5)], tmp_path / "out", max_width=64)
    assert other.endswith(" (2).mp4")
    with av.open(other) as c:
        assert (c.streams.video[0].codec_context.name, c.streams.video[0].width) == ("h264", 64)
    with pytest.raises(VtrError, match="an export is h264 or recorded, not 'hevc'"):
        export_clips([(str(src), 1.25, 3.5)], tmp_path / "out", export_as="hevc")


def _with_opus(src, out):
    """``src``'s video with its sound encoded to Opus, in a WebM (as the web's downloads are)."""
    with av.open(str(src)) as i, av.open(str(out), "w") as o:
        vo = o.add_stream_from_template(i.streams.video[0])
        ao = o.add_stream("libopus", rate=48000, layout="mono")
        for packet in i.demux():
            if packet.stream.type == "video" and packet.dts is not None:
                packet.stream = vo
                o.mux(packet)
            elif packet.stream.type == "audio":
                for frame in packet.decode():
                    frame.pts = None
                    for q in ao.encode(frame):
                        o.mux(q)
        for q in ao.encode():
            o.mux(q)
    return out


@pytest.mark.parametrize("name, sound_codec", [("phone.mp4", "aac"), ("camera.mov", "pcm_s16le")])
def test_an_exported_copy_keeps_sound_and_pictures_together(tmp_path, name, sound_codec):
    """A flash and a beep together at 1.0 s and 2.48 s of a 25 fps H.264 video with B-frames and one keyframe, its
    sound AAC (copied) or a camera's PCM (encoded to AAC), exported as its own packets from 0.37 s and 0.9 s: in the
    clip, which starts on the first frame at or after its start, each flash is where the source has it and each beep
    starts within 2 ms of its flash (a copied sound's packet that holds the start comes whole, its samples before the
    start hidden by the edit list)."""
    from vtr.data.cut import export_clips

    path = _flashes_and_beeps(tmp_path / name, np.arange(100) / 25, [1.0, 2.48], sound_codec=sound_codec,
                              options={"preset": "veryfast", "bf": "3", "g": "250"})
    for start in (0.37, 0.9):
        [(clip, error)] = export_clips([(str(path), start, 3.5)], tmp_path / f"out{start}")
        assert error is None
        with av.open(clip) as c:
            assert c.streams.audio[0].codec_context.name == "aac" and c.streams.video[0].codec_context.name == "h264"
            held = sum(1 for packet in c.demux(video=0) if packet.size)
        assert held > len(_decoded(clip)) >= round((3.5 - start) * 25)  # the frames from the keyframe on, hidden
        flashes, beeps = _flash_and_beep_times(clip)
        first = np.ceil(start * 25) / 25  # the clip starts on the first frame at or after its start
        assert [round(f, 3) for f in flashes] == [round(1.0 - first, 3), round(2.48 - first, 3)]
        assert len(beeps) == 2 and all(abs(b - f) < 0.002 for b, f in zip(beeps, flashes)), (start, flashes, beeps)


def _box(kind: bytes, body: bytes) -> bytes:
    import struct

    return struct.pack(">I", 8 + len(body)) + kind + body


def test_a_clips_edit_lists_end_at_its_end_in_32_and_64_bit_boxes(tmp_path):
    """``_end_edits_at`` on an MP4 laid out by hand: a track of 64-bit boxes whose edit list starts with an empty
    edit (its sound starts late) and runs 10.5 s, cut to 4 s (500 ms empty + 3.5 s shown); a track of 32-bit boxes of
    2 s, kept; the movie's duration, the longest track's; the mdat before the moov (a 64-bit size) passed over."""
    import struct

    from vtr.data.cut import _end_edits_at

    def elst(v1, *entries):
        form = ">QqI" if v1 else ">IiI"
        return _box(b"elst", bytes([int(v1), 0, 0, 0]) + struct.pack(">I", len(entries))
                    + b"".join(struct.pack(form, d, t, 0x10000) for d, t in entries))

    def tkhd(v1, duration):
        times = struct.pack(">QQII", 0, 0, 1, 0) if v1 else struct.pack(">IIII", 0, 0, 1, 0)
        return _box(b"tkhd", bytes([int(v1), 0, 0, 7]) + times + struct.pack(">Q" if v1 else ">I", duration)
                    + bytes(60))

    mvhd = _box(b"mvhd", bytes([1, 0, 0, 0]) + struct.pack(">QQIQ", 0, 0, 1000, 10500) + bytes(80))
    late = _box(b"trak", tkhd(True, 10500) + _box(b"edts", elst(True, (500, -1), (10000, 1234))) + _box(b"mdia", b""))
    short = _box(b"trak", tkhd(False, 2000) + _box(b"edts", elst(False, (2000, 0))))
    media = b"\x00" * 64
    path = tmp_path / "clip.mp4"
    path.write_bytes(_box(b"ftyp", b"isom\x00\x00\x02\x00") + struct.pack(">I4sQ", 1, b"mdat", 16 + len(media))
                     + media + _box(b"moov", mvhd + late + short))
    before = path.read_bytes()
    _end_edits_at(path, 4.0)
    after = path.read_bytes()
    assert len(after) == len(before) and after[:100] == before[:100]  # ftyp and mdat as they were

    def at(kind, nth=0):  # where the nth box of that type starts its body
        i = -1
        for _ in range(nth + 1):
            i = after.index(kind, i + 1)
        return i + 4

    body = at(b"mvhd")
    assert struct.unpack_from(">Q", after, body + 24)[0] == 4000
    body = at(b"elst")
    assert [struct.unpack_from(">Qq", after, body + 8 + 20 * k) for k in range(2)] == [(500, -1), (3500, 1234)]
    assert struct.unpack_from(">Q", after, at(b"tkhd") + 28)[0] == 4000
    body = at(b"elst", 1)
    assert struct.unpack_from(">Ii", after, body + 8) == (2000, 0)
    assert struct.unpack_from(">I", after, at(b"tkhd", 1) + 20)[0] == 2000


@pytest.mark.parametrize("kind", ["hdr", "sdr"])
def test_a_transcode_is_the_same_on_one_thread_and_on_several(tmp_path, monkeypatch, kind):
    """The frames a transcode converts (scaled; an HDR one tone-mapped) on several threads reach the encoder in order,
    each at its time, the same bit for bit as on one thread; and the clip shows its source's frames in turn. (The
    encoder's input is compared, not the clip: x264 on its automatic threads does not encode the same frames to the
    same bits every time.)"""
    import vtr.data.cut as cut
    from tests.videos import write_hdr_video

    frames = indexed_frames(40, height=64, width=96)
    src = (write_hdr_video(tmp_path / "hlg.mp4", frames, "hlg") if kind == "hdr"
           else write_video(tmp_path / "sdr.mp4", frames, options={"crf": "4", "preset": "ultrafast"}))

    class Encoder:  # what x264 is given
        def __init__(self):
            self.given = []

        def encode(self, frame=None):
            if frame is not None:
                self.given.append((frame.pts, frame.to_ndarray()))
            return []

    monkeypatch.setattr("vtr.device.usable_cores", lambda: 4)
    given = {}
    for threads in (1, 4):
        monkeypatch.setattr(cut, "CONVERT_THREADS", threads)
        encoder = Encoder()
        with av.open(str(src)) as c:
            assert cut._copy_video(c, c.streams.video[0], encoder, None, 0.2, 1.4, Fraction(25), 64, 42) == (30, 0.2)
        given[threads] = encoder.given
    assert [pts for pts, _ in given[4]] == [i * 3600 for i in range(30)]  # 1/25 s apart, at 90 kHz
    assert all(a == b and np.array_equal(x, y) for (a, x), (b, y) in zip(given[1], given[4]))
    cut.cut_clip(str(src), 0.2, 1.4, tmp_path / "clip.mp4", max_width=64)
    with av.open(str(tmp_path / "clip.mp4")) as c:
        shown = [frame_index_of(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
    if kind == "sdr":
        assert shown == list(range(5, 35))
    else:  # its greys through HDR and back, a level or two off: each within a frame of its own
        assert len(shown) == 30 and all(abs(i - want) <= 1 for i, want in zip(shown, range(5, 35))), shown


def test_frames_converted_on_threads_keep_their_order_and_stop_with_an_error_or_the_consumer():
    import threading
    import time

    from vtr.data.cut import _converted

    def slow(i):  # later frames finish first
        time.sleep(0.002 * (i % 3))
        return i * 10

    assert list(_converted(((i, i) for i in range(50)), slow, 3)) == [(i * 10, i) for i in range(50)]
    assert list(_converted(((i, i) for i in range(5)), slow, 1)) == [(i * 10, i) for i in range(5)]

    def broken(i):
        if i == 7:
            raise ValueError("frame 7 is damaged")
        return i

    with pytest.raises(ValueError, match="frame 7"):
        list(_converted(((i, i) for i in range(50)), broken, 2))
    seen, lock = [], threading.Lock()

    def counted(i):
        with lock:
            seen.append(i)
        time.sleep(0.01)
        return i

    taken = _converted(((i, i) for i in range(1000)), counted, 2)
    assert next(taken) == (0, 0)
    taken.close()  # the consumer gone (an encoder error): the frames queued are not converted
    assert len(seen) <= 6
