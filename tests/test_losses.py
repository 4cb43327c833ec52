import math
import os
import socket
import tempfile

import pytest
import torch
import torch.nn.functional as F

from vtr.losses import (
    clamp_temperature,
    distillation_loss,
    gather_features,
    gather_rows,
    get_sim,
    mlm_loss,
    mlm_mask,
    ranking_loss,
    ranking_pairs,
    uta_loss,
    vtc_loss,
    vtm_hard_negatives,
    vtm_labels,
    vtm_loss,
    vtm_pair_indices,
)

# ----------------------------------------------------------------------------------------------------------------
# VTC
# ----------------------------------------------------------------------------------------------------------------


def _hand_vtc(v, c, temp, ids=None):
    """Plain-Python VTC: cos similarities / temp, soft targets over same-id columns, both directions."""
    n = len(v)

    def cos(a, b):
        return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))

    S = [[cos(v[i], c[j]) / temp for j in range(n)] for i in range(n)]
    ids = list(range(n)) if ids is None else ids

    def direction(M):
        total = 0.0
        for i in range(n):
            lse = math.log(sum(math.exp(x) for x in M[i]))
            pos = [j for j in range(n) if ids[j] == ids[i]]
            total += -sum((M[i][j] - lse) / len(pos) for j in pos)
        return total / n

    St = [[S[j][i] for j in range(n)] for i in range(n)]
    return 0.5 * (direction(S) + direction(St))


V = [[1.0, 0.0], [0.6, 0.8], [-1.0, 2.0]]
C = [[2.0, 0.5], [0.0, 1.0], [-3.0, 1.0]]


def test_vtc_matches_hand_computation_diagonal():
    got = vtc_loss(torch.tensor(V), torch.tensor(C), 0.5)
    assert got.item() == pytest.approx(_hand_vtc(V, C, 0.5), rel=1e-5)


def test_vtc_matches_hand_computation_with_duplicate_ids():
    ids = [7, 7, 3]
    got = vtc_loss(torch.tensor(V), torch.tensor(C), torch.tensor(0.2), ids=torch.tensor(ids))
    assert got.item() == pytest.approx(_hand_vtc(V, C, 0.2, ids), rel=1e-5)
    # Distinct ids are the same as no ids.
    distinct = vtc_loss(torch.tensor(V), torch.tensor(C), 0.2, ids=torch.tensor([0, 1, 2]))
    assert distinct.item() == pytest.approx(vtc_loss(torch.tensor(V), torch.tensor(C), 0.2).item(), rel=1e-6)


def test_vtc_normalises_features_and_gets_sim_is_mean_of_frame_cosines():
    v, c = torch.randn(4, 3, 8), torch.randn(4, 8)
    sim, sim_t = get_sim(v, c, 0.1)
    expect = torch.stack(
        [torch.stack([F.cosine_similarity(v[i], c[j][None], dim=-1).mean() for j in range(4)]) for i in range(4)]
    ) / 0.1
    torch.testing.assert_close(sim, expect)
    torch.testing.assert_close(sim_t, expect.t())
    # Equivalent pooled form: mean of normalised frames (not re-normalised) dotted with the normalised text.
    pooled = F.normalize(v, dim=-1).mean(1)
    torch.testing.assert_close(sim, pooled @ F.normalize(c, dim=-1).t() / 0.1)
    # Scale invariance (features are normalised inside).
    torch.testing.assert_close(vtc_loss(v * 3, c * 0.1, 0.1), vtc_loss(v, c, 0.1))


def test_clamp_temperature_in_place():
    temp = torch.nn.Parameter(torch.tensor(0.0001))
    out = clamp_temperature(temp)
    assert out is temp and temp.item() == pytest.approx(0.001) and temp.requires_grad
    temp.data.fill_(3.0)
    clamp_temperature(temp)
    assert temp.item() == pytest.approx(0.5)
    temp.data.fill_(0.07)
    clamp_temperature(temp)
    assert temp.item() == pytest.approx(0.07)


# ----------------------------------------------------------------------------------------------------------------
# Gather: two gloo processes
# ----------------------------------------------------------------------------------------------------------------

WORLD, LOCAL_B, DIM = 2, 3, 4


def _rank_inputs(rank):
    g = torch.Generator().manual_seed(100 + rank)
    x = torch.randn(LOCAL_B, DIM, generator=g)
    w = torch.randn(WORLD * LOCAL_B, DIM, generator=g)  # a different upstream gradient on each rank
    v, c = torch.randn(LOCAL_B, 2, DIM, generator=g), torch.randn(LOCAL_B, DIM, generator=g)
    ids = torch.tensor([0, 1, 1]) + 10 * rank
    return x, w, v, c, ids


def _gather_worker(rank, port, out_dir):
    import torch.distributed as dist
    import torch.distributed.nn as dist_nn

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        x, w, v, c, ids = _rank_inputs(rank)
        res = {}

        xa = x.clone().requires_grad_()
        out = gather_features(xa, rank, WORLD)
        (out * w).sum().backward()
        res["out"], res["grad_local"] = out.detach(), xa.grad

        xb = x.clone().requires_grad_()
        out_b = torch.cat(dist_nn.all_gather(xb), 0)
        (out_b * w).sum().backward()
        res["out_sum"], res["grad_sum"] = out_b.detach(), xb.grad

        res["ids"] = gather_features(ids, rank, WORLD)

        va, ca = v.clone().requires_grad_(), c.clone().requires_grad_()
        loss = vtc_loss(va, ca, 0.1, ids=ids, rank=rank, world_size=WORLD)
        loss.backward()
        res["vtc"], res["vtc_gv"], res["vtc_gc"] = loss.detach(), va.grad, ca.grad
        torch.save(res, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def gathered():
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as d:
        mp.spawn(_gather_worker, args=(_free_port(), d), nprocs=WORLD, join=True)
        yield [torch.load(os.path.join(d, f"rank{r}.pt")) for r in range(WORLD)]


def test_gather_forward_is_rank_order_concatenation(gathered):
    xs = [_rank_inputs(r)[0] for r in range(WORLD)]
    for r in range(WORLD):
        torch.testing.assert_close(gathered[r]["out"], torch.cat(xs))
        torch.testing.assert_close(gathered[r]["out_sum"], torch.cat(xs))
        torch.testing.assert_close(gathered[r]["ids"], torch.tensor([0, 1, 1, 10, 11, 11]))


def test_gather_backward_returns_only_local_slice(gathered):
    ws = [_rank_inputs(r)[1] for r in range(WORLD)]
    for r in range(WORLD):
        sl = slice(r * LOCAL_B, (r + 1) * LOCAL_B)
        # Ours: this rank's own upstream gradient, its slice only.
        torch.testing.assert_close(gathered[r]["grad_local"], ws[r][sl])
        # torch.distributed.nn.all_gather: the slices of every rank's upstream gradient, summed.
        torch.testing.assert_close(gathered[r]["grad_sum"], sum(w[sl] for w in ws))
        assert not torch.allclose(gathered[r]["grad_local"], gathered[r]["grad_sum"])


def test_gathered_vtc_equals_single_process_global_batch(gathered):
    inputs = [_rank_inputs(r) for r in range(WORLD)]
    v = torch.cat([i[2] for i in inputs]).requires_grad_()
    c = torch.cat([i[3] for i in inputs]).requires_grad_()
    ids = torch.cat([i[4] for i in inputs])
    loss = vtc_loss(v, c, 0.1, ids=ids)
    loss.backward()
    for r in range(WORLD):
        sl = slice(r * LOCAL_B, (r + 1) * LOCAL_B)
        torch.testing.assert_close(gathered[r]["vtc"], loss.detach())
        # Each rank's local-slice gradient is exactly its share of the global-batch gradient.
        torch.testing.assert_close(gathered[r]["vtc_gv"], v.grad[sl])
        torch.testing.assert_close(gathered[r]["vtc_gc"], c.grad[sl])


def test_gather_world_size_one_is_identity():
    x = torch.randn(2, 3)
    assert gather_features(x, 0, 1) is x


# ----------------------------------------------------------------------------------------------------------------
# VTM
# ----------------------------------------------------------------------------------------------------------------


def test_vtm_hard_negatives_never_pick_positives():
    g = torch.Generator().manual_seed(0)
    ids = torch.tensor([0, 0, 1, 2, 2, 2, 3, 4])
    pos = ids[:, None] == ids[None, :]
    for _ in range(50):
        sim = torch.randn(8, 8, generator=g) * 5
        nv, nt = vtm_hard_negatives(sim, sim.t(), ids=ids, generator=g)
        assert nv.shape == nt.shape == (8,)
        assert not pos[torch.arange(8), nv].any() and not pos[torch.arange(8), nt].any()
        nv, nt = vtm_hard_negatives(sim, sim.t(), generator=g)  # no ids: only the diagonal is positive
        assert (nv != torch.arange(8)).all() and (nt != torch.arange(8)).all()
        nv, nt = vtm_hard_negatives(sim, sim.t(), ids=ids, generator=g, hard=False)
        assert not pos[torch.arange(8), nv].any() and not pos[torch.arange(8), nt].any()


def test_vtm_hard_negatives_follow_softmax_weights():
    sim_v2t = torch.tensor([[0.0, 2.0, 1.0, 0.0], [1.0, 0.0, 0.5, -1.0], [0.0, 0.0, 0.0, 3.0], [1.0, 1.0, 1.0, 0.0]])
    sim_t2v = sim_v2t.t().contiguous()
    n = 2000
    g = torch.Generator().manual_seed(1)
    eye = torch.eye(4, dtype=torch.bool)
    w = F.softmax(sim_v2t, 1).masked_fill(eye, 0)
    expect_text = w / w.sum(1, keepdim=True)
    wt = F.softmax(sim_t2v, 1).masked_fill(eye, 0)
    expect_video = wt / wt.sum(1, keepdim=True)
    # Tile the 4x4 similarity m times and give copies the same id: column class k of row i then carries total
    # weight expect[i % 4, k] and every copy of the diagonal is a positive (zero weight). n draws per row class.
    m = 25
    ids = torch.arange(4).repeat(m)
    rows = torch.arange(4 * m) % 4
    counts_t, counts_v = torch.zeros(4, 4), torch.zeros(4, 4)
    for _ in range(n // m):
        nv, nt = vtm_hard_negatives(sim_v2t.repeat(m, m), sim_t2v.repeat(m, m), ids=ids, generator=g)
        counts_t.index_put_((rows, nt % 4), torch.ones(4 * m), accumulate=True)
        counts_v.index_put_((rows, nv % 4), torch.ones(4 * m), accumulate=True)
    torch.testing.assert_close(counts_t / n, expect_text, atol=0.035, rtol=0)
    torch.testing.assert_close(counts_v / n, expect_video, atol=0.035, rtol=0)


def test_vtm_hard_negatives_reproducible_and_degenerate_ids():
    sim = torch.randn(6, 6)
    a = vtm_hard_negatives(sim, sim.t(), generator=torch.Generator().manual_seed(3))
    b = vtm_hard_negatives(sim, sim.t(), generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    # Every sample shares an id: no negative exists; fall back to uniform over the others instead of crashing.
    nv, nt = vtm_hard_negatives(sim, sim.t(), ids=torch.zeros(6, dtype=torch.long))
    assert (nv != torch.arange(6)).all() and (nt != torch.arange(6)).all()


def test_vtm_pairs_labels_and_loss_follow_umt_order():
    nv, nt = torch.tensor([2, 0, 1]), torch.tensor([1, 2, 0])
    vi, ti = vtm_pair_indices(nv, nt)
    assert vi.tolist() == [0, 1, 2, 2, 0, 1, 0, 1, 2]
    assert ti.tolist() == [0, 1, 2, 0, 1, 2, 1, 2, 0]
    assert vtm_labels(3).tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 0]
    logits = torch.randn(9, 2)
    torch.testing.assert_close(vtm_loss(logits), F.cross_entropy(logits, vtm_labels(3)))


# ----------------------------------------------------------------------------------------------------------------
# MLM
# ----------------------------------------------------------------------------------------------------------------

PAD, CLS, SEP, MASK, VOCAB = 0, 101, 102, 103, 30522


def _batch(n=4000, length=32):
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(1000, VOCAB, (n, length), generator=g)
    lengths = torch.randint(3, length + 1, (n,), generator=g)
    pos = torch.arange(length)[None]
    attn = (pos < lengths[:, None]).long()
    ids[:, 0] = CLS
    ids[torch.arange(n), lengths - 1] = SEP
    ids[attn == 0] = PAD
    return ids, attn


def test_ranking_pairs_take_the_hardest_negatives_once_each_and_never_a_positive():
    sim_v2t = torch.tensor([[0.9, 0.8, 0.1, 0.7],   # video 0: its text 0 first
                            [0.95, 0.5, 0.3, 0.2],  # video 1: text 0 above its own text 1
                            [0.2, 0.1, 0.6, 0.65],  # video 2
                            [0.3, 0.2, 0.1, 0.0]])  # video 3: its text 3 last
    ids = torch.tensor([10, 11, 12, 12])  # texts 2 and 3 are the same caption: positives of videos 2 and 3
    p = ranking_pairs(sim_v2t, k=3, ids=ids)
    pairs = list(zip(p["text_idx"].tolist(), p["video_idx"].tolist()))
    assert len(pairs) == len(set(pairs))  # each distinct pair once
    cand = {(d, q): [pairs[j] for j in p["slot"][d, q].tolist()] for d in (0, 1) for q in range(4)}
    # text 0 (t2v): its video, then the videos ITC ranks highest for it: 1 (0.95), 3 (0.3)
    assert cand[(0, 0)] == [(0, 0), (0, 1), (0, 3)]
    # text 2: videos 2 and 3 are both its positives, so only videos 0 and 1 are negatives
    assert cand[(0, 2)] == [(2, 2), (2, 1), (2, 0)]
    # video 3 (v2t): its text, then texts 0 and 1; text 2 shares its caption and is never a negative
    assert cand[(1, 3)] == [(3, 3), (0, 3), (1, 3)]
    for (t, v), label in zip(pairs, p["label"].tolist()):
        assert label == int(ids[t] == ids[v])
    assert p["valid"].all()
    # ITC hits (positive above every negative): text 0's 0.9 is below video 1's 0.95; video 2's 0.6 is above
    # texts 0 and 1 (0.2, 0.1), text 3 (0.65) being a positive of it too
    assert p["itc_hit"][0].tolist() == [False, False, True, False]
    assert p["itc_hit"][1].tolist() == [True, False, True, False]
    # within ITC's top k = 3 (above the 2nd hardest negative): video 1's 0.5 is (negatives 0.95, 0.3), video 3's 0.0
    # is not (0.3, 0.2)
    assert p["in_top_k"][1].tolist() == [True, True, True, False]
    t2v = ranking_pairs(sim_v2t, k=3, ids=ids, v2t=False)  # the text queries alone
    assert t2v["slot"].shape == (1, 4, 3) and len(t2v["text_idx"]) == 4 * 3
    for q in range(4):
        assert [(t2v["text_idx"][j].item(), t2v["video_idx"][j].item()) for j in t2v["slot"][0, q]] == cand[(0, q)]
    assert torch.equal(t2v["itc_hit"][0], p["itc_hit"][0]) and torch.equal(t2v["in_top_k"][0], p["in_top_k"][0])


def test_ranking_loss_ranks_the_positive_first_and_reads_the_itm_row():
    torch.manual_seed(0)
    n, k = 6, 3
    sim = torch.randn(n, n)
    p = ranking_pairs(sim, k)
    logits = torch.zeros(len(p["text_idx"]), 2, requires_grad=True)
    loss, hit = ranking_loss(logits, p)
    # all scores equal: the listwise term is ln k in both directions, the pairwise term ln 2
    assert loss.item() == pytest.approx(math.log(k) + math.log(2), abs=1e-6)
    assert not hit.any()  # a tie does not rank the positive first
    loss.backward()
    assert (logits.grad[p["label"] == 1, 1] < 0).all()  # the positives' match logits go up
    perfect = torch.stack([torch.zeros(len(p["label"])), 10.0 * p["label"].float()], 1)
    _, hit = ranking_loss(perfect, p)
    assert torch.equal(hit, p["in_top_k"])  # a perfect head is right exactly where ITC's top k holds the positive
    small = ranking_pairs(torch.randn(2, 2), k=4)  # fewer clips than candidates: the missing ones are masked
    assert small["slot"].shape == (2, 2, 4) and small["valid"].sum().item() == 2 * 2 * 2  # positive + 1 negative
    loss, _ = ranking_loss(torch.randn(len(small["label"]), 2), small)
    assert math.isfinite(loss.item())
    with pytest.raises(ValueError, match="k >= 2"):
        ranking_pairs(sim, 1)


def test_mlm_mask_statistics():
    ids, attn = _batch()
    orig = ids.clone()
    masked, labels = mlm_mask(ids, attn, VOCAB, MASK, PAD, CLS, prob=0.5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(ids, orig)  # input untouched
    sel = labels != -100
    assert not sel[ids == PAD].any() and not sel[ids == CLS].any() and not sel[attn == 0].any()
    assert sel[ids == SEP].any()  # SEP may be masked, as upstream
    torch.testing.assert_close(labels[sel], orig[sel])
    assert torch.equal(masked[~sel], orig[~sel])
    eligible = (ids != PAD) & (ids != CLS)
    assert sel.sum().item() / eligible.sum().item() == pytest.approx(0.5, abs=0.01)
    n = sel.sum().item()
    to_mask = (masked[sel] == MASK).sum().item() / n
    kept = (masked[sel] == orig[sel]).sum().item() / n
    rand = 1 - to_mask - kept
    assert to_mask == pytest.approx(0.8, abs=0.01)
    assert kept == pytest.approx(0.1, abs=0.01)
    assert rand == pytest.approx(0.1, abs=0.01)


def test_mlm_mask_reproducible_and_loss():
    ids, attn = _batch(8, 16)
    a = mlm_mask(ids, attn, VOCAB, MASK, PAD, CLS, generator=torch.Generator().manual_seed(9))
    b = mlm_mask(ids, attn, VOCAB, MASK, PAD, CLS, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    labels = a[1]
    logits = torch.randn(8, 16, 50).requires_grad_()
    small = labels.clamp(max=49).masked_fill(labels == -100, -100)
    loss = mlm_loss(logits, small)
    sel = small != -100
    torch.testing.assert_close(loss, F.cross_entropy(logits[sel], small[sel]))
    empty = mlm_loss(logits, torch.full((8, 16), -100))
    assert empty.item() == 0.0 and empty.requires_grad


# ----------------------------------------------------------------------------------------------------------------
# Distillation / UTA
# ----------------------------------------------------------------------------------------------------------------


def test_distillation_loss_values_and_gradients():
    s = torch.randn(2, 5, 8)
    assert distillation_loss(s, s * 3).item() == pytest.approx(0.0, abs=1e-6)
    assert distillation_loss(s, -s).item() == pytest.approx(4.0, abs=1e-6)
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    assert distillation_loss(a, b).item() == pytest.approx(2.0)
    assert uta_loss is distillation_loss
    student = torch.randn(3, 4, 8, requires_grad=True)
    teacher = torch.randn(3, 4, 8, requires_grad=True)
    distillation_loss(student, teacher).backward()
    assert student.grad is not None and teacher.grad is None
    assert distillation_loss(torch.randn(4, 8), torch.randn(4, 8)).dim() == 0


def test_gather_rows_backward_is_the_same_every_run():
    """The matching pairs gather a video's tokens (or a caption's states) once per pair they are in. ``x[idx]``'s
    backward on the CPU sums those repeated rows in a parallel order that changes between runs (with two threads it
    failed this check in most runs here, so a pretraining run with VTM was not reproducible bit for bit);
    ``gather_rows`` must sum them the same way every time, and give the same values and gradients as ``x[idx]``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(32, 257, 128, generator=g, requires_grad=True)
        idx = torch.randint(0, 32, (96,), generator=g)
        up = torch.randn(96, 257, 128, generator=g)
        assert torch.equal(gather_rows(x, idx), x[idx])
        assert torch.equal(gather_rows(x, idx.view(2, 48)), x[idx.view(2, 48)])
        grads = []
        for _ in range(8):
            x.grad = None
            (gather_rows(x, idx) * up).sum().backward()
            grads.append(x.grad.clone())
        assert all(torch.equal(grads[0], h) for h in grads[1:])
        assert torch.allclose(grads[0], torch.zeros_like(x).index_add_(0, idx, up), atol=1e-5)
    finally:
        torch.set_num_threads(threads)


def test_caption_ids_match_identical_captions_at_any_padded_length():
    """Identical token sequences share an id and others do not, and padding of any length (up to BERT's 512
    positions) changes nothing: ranks whose batches were trimmed to different lengths agree on every caption."""
    from vtr.losses import caption_ids

    ids = torch.tensor([[101, 7, 8, 102], [101, 7, 9, 102], [101, 7, 8, 102], [101, 8, 7, 102]])
    mask = torch.ones_like(ids)
    base = caption_ids(ids, mask)
    assert base[0] == base[2] and len({int(base[0]), int(base[1]), int(base[3])}) == 3
    for extra in (1, 10, 500):
        padded = torch.cat([ids, torch.zeros(len(ids), extra, dtype=ids.dtype)], 1)
        padded_mask = torch.cat([mask, torch.zeros(len(ids), extra, dtype=mask.dtype)], 1)
        assert torch.equal(caption_ids(padded, padded_mask), base)
