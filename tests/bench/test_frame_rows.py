import numpy as np

from bench.frame_rows import top1
from index.windows import Window


def test_frame_rows_localise_inside_a_long_window_and_whole_windows_count_as_wide_hits():
    # one 8 s video of four 2 s clips, encoded as one 8 s window of 4 frames: frame k is clip k's direction
    e = np.eye(4, dtype=np.float32)
    tables = {"v.mp4": [(Window(0.0, 8.0), e)]}
    clips = [{"caption": f"c{k}", "start": 2.0 * k, "end": 2.0 * k + 2} for k in range(4)]
    truth = [{"video": "v.mp4", "clips": clips}]
    queries = ["c0", "c1", "c2", "c3"]
    rows = top1(tables, truth, queries, e, alpha=0.0)
    assert rows == {"top1_hit_rate": 100.0, "mean_segment_s": 2.0}  # each caption: its own 2 s
    whole = top1(tables, truth, queries, e, alpha=None)
    assert whole == {"top1_hit_rate": 100.0, "mean_segment_s": 8.0}  # the whole window overlaps every clip
    wrong = top1(tables, truth, queries, e[::-1].copy(), alpha=0.0)  # queries pointing at the mirrored clip
    assert wrong["top1_hit_rate"] == 0.0
