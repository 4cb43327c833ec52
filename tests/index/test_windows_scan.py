import os

import pytest

from index.scan import scan_folders
from index.windows import plan_windows, window_frame_indices
from vtr.data.video import Clock


def spans(duration, **kw):
    return [(w.start, w.end) for w in plan_windows(duration, **kw)]


def test_plan_windows_defaults():
    assert spans(3.0) == [(0.0, 3.0)]  # short video: one window over all of it
    assert spans(8.0) == [(0.0, 8.0)]
    assert spans(16.0) == [(0.0, 8.0), (4.0, 12.0), (8.0, 16.0)]
    assert spans(13.0) == [(0.0, 8.0), (4.0, 12.0), (5.0, 13.0)]  # the tail gets its own window
    assert spans(10.0, window_s=4, stride_s=4) == [(0.0, 4.0), (4.0, 8.0), (6.0, 10.0)]
    with pytest.raises(ValueError):
        plan_windows(10, stride_s=0)


def test_window_frame_indices_sample_inside_window():
    w = plan_windows(24.0)[3]  # 12-20 s
    assert window_frame_indices(w, Clock(fps=10, num_frames=240), num_frames=4) == [129, 149, 169, 189]
    # a variable rate: 10 fps to 12 s, then 2 fps; the window's frames are those shown from 12 to 20 s
    times = [i / 10 for i in range(120)] + [12 + i / 2 for i in range(24)]
    clock = Clock.from_times(144 / 24, 144, times)
    assert window_frame_indices(w, clock, num_frames=4) == [121, 125, 129, 133]


def test_scan_skips_the_folders_drives_and_nas_boxes_keep_for_themselves(tmp_path):
    """A USB drive's recycle bin or a Synology share's @eaDir (a small transcode of every video) filled the index
    with deleted videos and duplicates. Named as a root, such a folder is scanned all the same."""
    root = tmp_path / "share"
    kept = ["holiday/beach.mp4", "eaDir.mp4", "recycle/clip.mov"]
    system = ["$RECYCLE.BIN/S-1-5-21/$R1A2B3C.mp4", "RECYCLER/old.avi", "#recycle/deleted.mov",
              "@Recycle/gone.mkv", "#snapshot/GMT+01_2026/holiday/beach.mp4",
              "holiday/@eaDir/beach.mp4/SYNOPHOTO_FILM_M.mp4", "System Volume Information/tracking.mp4",
              "lost+found/#1234.mp4"]
    for rel in kept + system:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    found = {os.path.relpath(f.path, root) for f in scan_folders([str(root)])}
    assert found == set(kept)
    named = [f.path for f in scan_folders([str(root / "#recycle")])]
    assert named == [str(root / "#recycle" / "deleted.mov")]


def test_scan_skips_hidden_survives_loops_and_lists_dangling(tmp_path):
    root = tmp_path / "videos"
    (root / "a" / "b").mkdir(parents=True)
    (root / ".hidden").mkdir()
    for p in ["a/one.mp4", "a/b/two.MKV", ".hidden/three.mp4", "a/.four.mp4", "a/notes.txt"]:
        (root / p).write_bytes(b"x")
    os.symlink(root, root / "a" / "loop")  # a symlink loop back to the root
    os.symlink(root / "a" / "one.mp4", root / "same.mp4")  # a second name for one file: listed once
    os.symlink(root / "missing.mp4", root / "dangling.mp4")
    (root / "dir.mp4").mkdir()  # a folder named like a video is just a folder
    (root / "dir.mp4" / "five.webm").write_bytes(b"x")
    found = scan_folders([str(root)])
    rel = {os.path.relpath(f.path, root): f.error for f in found}
    one = {"a/one.mp4", "same.mp4"} & set(rel)
    assert len(one) == 1  # one entry per real file, whichever name is met first
    assert set(rel) - one == {"a/b/two.MKV", "dangling.mp4", "dir.mp4/five.webm"}
    assert rel["dangling.mp4"] and "dangling" in rel["dangling.mp4"]
    assert rel[one.pop()] is None


def test_typescript_is_not_taken_for_mpeg_ts_and_a_damaged_ts_video_still_fails_loudly(tmp_path):
    """`.ts` names both broadcast video and TypeScript: a folder with a node_modules listed thousands of source files
    as failed videos. A `.ts` that starts as text is code; binary `.ts` files are videos, damaged or not."""
    from tests.videos import indexed_frames, write_video

    root = tmp_path / "drive"
    (root / "recordings").mkdir(parents=True)
    write_video(root / "recordings" / "news.ts", indexed_frames(10), fps=10, codec="mpeg2video")
    (root / "app" / "node_modules" / "lib").mkdir(parents=True)
    (root / "app" / "src.ts").write_text("export const answer: number = 42;\n")
    (root / "app" / "node_modules" / "lib" / "index.d.ts").write_text("declare const π: number; // " + "é" * 300)
    (root / "recordings" / "cut.ts").write_bytes(b"\x47\x40\x11\x10" + bytes(range(256)) * 3)  # binary, damaged
    (root / "recordings" / "notes.txt").write_text("not a video at all")
    found = {os.path.relpath(f.path, root) for f in scan_folders([str(root)])}
    assert found == {"recordings/news.ts", "recordings/cut.ts"}
