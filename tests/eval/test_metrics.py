import numpy as np
import pytest

from vtr.eval.metrics import ranks_of_ground_truth, retrieval_metrics, umt_names


def umt_itm_eval_ranks(scores, gts):
    """UMT's loop (retrieval_utils.itm_eval) with the stable argsort we document."""
    ranks = []
    for row, gt in zip(scores, gts):
        inds = np.argsort(row, kind="stable")[::-1]
        ranks.append(min(np.where(inds == g)[0][0] for g in np.atleast_1d(gt)))
    return np.array(ranks)


def test_one_to_one_by_hand():
    s = np.array([[0.9, 0.1, 0.2], [0.3, 0.8, 0.5], [0.7, 0.6, 0.4]])
    m = retrieval_metrics(s, txt2video=[0, 1, 2], video2txt=[[0], [1], [2]])
    # v2t ranks [0, 0, 2]; t2v (columns) ranks [0, 0, 1]
    assert m["v2t_r1"] == pytest.approx(200 / 3)
    assert m["v2t_r5"] == m["v2t_r10"] == 100.0
    assert m["t2v_r1"] == pytest.approx(200 / 3)
    assert m["t2v_r_mean"] == pytest.approx((200 / 3 + 200) / 3)
    assert m["r_mean"] == pytest.approx((m["t2v_r_mean"] + m["v2t_r_mean"]) / 2)
    assert m["v2t_mdr"] == 1.0 and m["v2t_mnr"] == pytest.approx(2 / 3 + 1)
    assert m["t2v_mdr"] == 1.0 and m["t2v_mnr"] == pytest.approx(1 / 3 + 1)


def test_recall_at_10_and_median_rank():
    n = 12
    s = np.zeros((n, n))
    for v in range(n):  # video v has exactly v texts scored above its own
        s[v, v] = 0.5
        for i in range(v):
            s[v, (v + 1 + i) % n] = 1.0
    m = retrieval_metrics(s, txt2video=list(range(n)), video2txt=[[v] for v in range(n)])
    assert list(ranks_of_ground_truth(s, list(range(n)))) == list(range(n))
    assert m["v2t_r1"] == pytest.approx(100 / 12)
    assert m["v2t_r5"] == pytest.approx(500 / 12)
    assert m["v2t_r10"] == pytest.approx(1000 / 12)
    assert m["v2t_mdr"] == 6.5 and m["v2t_mnr"] == 6.5


def test_ties_higher_index_first():
    row = np.array([[0.5, 0.5, 0.5, 0.1]])
    assert ranks_of_ground_truth(row, [0])[0] == 2
    assert ranks_of_ground_truth(row, [1])[0] == 1
    assert ranks_of_ground_truth(row, [2])[0] == 0
    assert ranks_of_ground_truth(row, [3])[0] == 3


def test_matches_umt_loop_with_and_without_ties():
    rng = np.random.default_rng(0)
    tied = rng.integers(0, 4, size=(40, 300)).astype(np.float32)  # many ties, long rows
    gts = [list(rng.choice(300, size=rng.integers(1, 4), replace=False)) for _ in range(40)]
    assert np.array_equal(ranks_of_ground_truth(tied, gts), umt_itm_eval_ranks(tied, gts))
    distinct = rng.standard_normal((40, 300)).astype(np.float32)
    gt = list(rng.integers(0, 300, size=40))
    ours = ranks_of_ground_truth(distinct, gt)
    # without ties UMT's default (unstable) argsort gives the same ranks
    umt = np.array([np.where(np.argsort(r)[::-1] == g)[0][0] for r, g in zip(distinct, gt)])
    assert np.array_equal(ours, umt)


def test_several_ground_truths_msvd_style():
    # video 0 has texts 0,1,2; video 1 has texts 3,4
    s = np.array([[0.1, 0.7, 0.3, 0.9, 0.2], [0.8, 0.1, 0.2, 0.3, 0.5]])
    m = retrieval_metrics(s, txt2video=[0, 0, 0, 1, 1], video2txt=[[0, 1, 2], [3, 4]])
    # v2t: best of the captions -> ranks [1, 1]
    assert m["v2t_r1"] == 0.0 and m["v2t_r5"] == 100.0
    assert m["v2t_mdr"] == 2.0 and m["v2t_mnr"] == 2.0
    # t2v columns: t0 [0.1,0.8] r1, t1 [0.7,0.1] r0, t2 [0.3,0.2] r0, t3 [0.9,0.3] r1, t4 [0.2,0.5] r0
    assert m["t2v_r1"] == pytest.approx(60.0)
    assert m["t2v_mnr"] == pytest.approx(1.4)
    assert m["t2v_mdr"] == 1.0
    # an int ground truth for v2t and a list for t2v work too
    m2 = retrieval_metrics(s[:, [3, 0]], txt2video=[[0], [1]], video2txt=[0, 1])  # [[.9, .1], [.3, .8]]
    assert m2["v2t_r1"] == 100.0 and m2["t2v_r1"] == 100.0


def test_separate_directions_and_rank_matrix():
    itc = np.array([[0.9, 0.2], [0.8, 0.3]])
    itm_v2t = np.array([[5.0, -100.0], [-100.0, 3.0]])  # rows: videos
    itm_t2v = np.array([[1.0, 2.0], [-100.0, 4.0]])  # rows: texts; text 0 prefers video 1
    m = retrieval_metrics(itm_v2t, [0, 1], [[0], [1]], scores_t2v=itm_t2v, rank_scores_v2t=itc)
    assert m["v2t_r1"] == 100.0
    assert m["t2v_r1"] == 50.0
    # MdR/MnR from the ITC matrix: v2t ranks [0, 1], t2v ranks [0, 0] (ITM alone: [0, 0] and [1, 0])
    assert m["v2t_mnr"] == 1.5 and m["t2v_mnr"] == 1.0


def test_umt_names_trap():
    s = np.array([[0.9, 0.1], [0.95, 0.99]])  # v2t ranks [0, 0]; t2v ranks [1 (0.9 < 0.95), 0]
    m = retrieval_metrics(s, [0, 1], [[0], [1]])
    u = umt_names(m)
    assert u["txt_r1"] == 100.0  # txt_r = video->text
    assert u["img_r1"] == 50.0  # img_r = text->video


def test_rejects_nan_and_bad_shapes():
    with pytest.raises(ValueError, match="NaN"):
        retrieval_metrics(np.array([[np.nan]]), [0], [[0]])
    with pytest.raises(ValueError, match="scores_t2v"):
        retrieval_metrics(np.zeros((2, 3)), [0, 1, 1], [[0], [1, 2]], scores_t2v=np.zeros((2, 3)))
