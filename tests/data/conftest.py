"""Session-scoped small test videos (written once with PyAV; see tests/videos.py)."""

import pytest

from tests.videos import indexed_frames, write_video

NUM_FRAMES = 60
FPS = 25


@pytest.fixture(scope="session")
def video_frames():
    """The uint8 [60, 48, 64, 3] frames every test video holds (frame i encodes i)."""
    return indexed_frames(NUM_FRAMES)


@pytest.fixture(scope="session")
def videos(tmp_path_factory, video_frames):
    """{"h264_mp4": path, "mpeg4_avi": path, "mpeg4_mkv": path}: 60 frames, 25 fps, 64x48, keyframe every 12."""
    root = tmp_path_factory.mktemp("videos")
    return {
        "h264_mp4": write_video(root / "clip_h264.mp4", video_frames, fps=FPS, codec="libx264", gop=12),
        "mpeg4_avi": write_video(root / "clip_mpeg4.avi", video_frames, fps=FPS, codec="mpeg4", gop=12),
        # mkv stores no frame count: exercises the duration x fps estimate
        "mpeg4_mkv": write_video(root / "clip_mpeg4.mkv", video_frames, fps=FPS, codec="mpeg4", gop=12),
    }
