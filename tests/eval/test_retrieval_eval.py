"""The zero-shot protocol: ITM re-ranking, the resumable feature cache, and (with the real pieces) `vtr eval`."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vtr.eval.cache import ChunkedArrays
from vtr.eval.rerank import ITM_FILL, itm_rerank, topk_pairs
from vtr.eval.retrieval import evaluate_retrieval

# ------------------------------------------------------------------------------------------- fakes
T, PIX, E = 2, 4, 4  # frames per video, "patches" (pixels) per frame, embedding width


class FakeVideos(torch.utils.data.Dataset):
    """videos[i] -> (i, frames [T, 3, 2, 2]) (or ``shape``), deterministic per index."""

    def __init__(self, n, shape=(T, 3, 2, 2)):
        self.n, self.shape = n, shape

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(1000 + i)
        return i, torch.randn(*self.shape, generator=g)


class Interrupted(Exception):
    pass


class FakeModel:
    """Implements the VideoTextModel contract with cheap deterministic maths; records what it encodes."""

    def __init__(self, fail_after_video_batches=None, fail_after_itm_calls=None):
        self.videos_seen, self.texts_seen, self.itm_calls = [], 0, 0
        self.fail_after_video_batches = fail_after_video_batches
        self.fail_after_itm_calls = fail_after_itm_calls
        self.proj = torch.randn(12, E, generator=torch.Generator().manual_seed(7))

    def encode_video(self, frames, return_tokens=False):
        if self.fail_after_video_batches is not None and len(self.videos_seen) >= self.fail_after_video_batches:
            raise Interrupted
        self.videos_seen.append(frames.shape[0])
        b = frames.shape[0]
        per_frame = frames.reshape(b, T, 12)
        frame_embeds = F.normalize(per_frame @ self.proj, dim=-1)
        tokens = frames.permute(0, 1, 3, 4, 2).reshape(b, T * PIX, 3) if return_tokens else None
        return SimpleNamespace(frame_embeds=frame_embeds, embedding=frame_embeds.mean(1), tokens=tokens)

    def encode_text(self, input_ids, attention_mask):
        self.texts_seen += input_ids.shape[0]
        x = input_ids.float()
        hidden = torch.stack([torch.sin(x), torch.cos(x), torch.sin(2 * x)], dim=-1)  # [N, L, 3]
        embedding = F.normalize(hidden.reshape(len(x), -1)[:, :E] + 0.1, dim=-1)
        return SimpleNamespace(embedding=embedding, hidden=hidden, attention_mask=attention_mask)

    @staticmethod
    def similarity(frame_embeds, text_embeds):
        return frame_embeds.mean(1) @ text_embeds.t()

    def itm_score(self, text_hidden, text_mask, video_tokens):
        self.itm_calls += 1
        if self.fail_after_itm_calls is not None and self.itm_calls > self.fail_after_itm_calls:
            raise Interrupted
        return (text_hidden[:, 0] * video_tokens.mean(1)).sum(-1)


def fake_tokenize(texts):
    ids = torch.tensor([[(ord(c) * (j + 1)) % 97 for j, c in enumerate(t.ljust(5)[:5])] for t in texts])
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def fake_split(nv=10, captions_per_video=1):
    texts, txt2video, video2txt = [], [], []
    for v in range(nv):
        video2txt.append([])
        for c in range(captions_per_video):
            video2txt[v].append(len(texts))
            txt2video.append(v)
            texts.append(f"v{v}c{c}" + "abcdefgh"[(v + c) % 8])
    return texts, txt2video, video2txt


def run_eval(model, cache_dir, nv=10, **kw):
    texts, t2v, v2t = fake_split(nv)
    kw = {"k_test": 3, "batch_size": 2, "workers": 0, "device": "cpu", **kw}
    return evaluate_retrieval(model, texts, FakeVideos(nv), t2v, v2t, fake_tokenize, cache_dir, **kw)


# ------------------------------------------------------------------------------------- ITM re-rank
def brute_force_itm(itc, itm, k):
    nv, nt = itc.shape
    v2t = np.full((nv, nt), ITM_FILL)
    for v in range(nv):
        top = np.argsort(-itc[v])[:k]
        v2t[v, top] = itm[v, top]
    t2v = np.full((nt, nv), ITM_FILL)
    for t in range(nt):
        top = np.argsort(-itc[:, t])[:k]
        t2v[t, top] = itm[top, t]
    return v2t, t2v


@pytest.mark.parametrize("k", [1, 3, 50])
def test_itm_rerank_matches_brute_force(k):
    g = torch.Generator().manual_seed(k)
    itc = torch.randn(6, 9, generator=g)
    itm = torch.randn(6, 9, generator=g)
    seen = []

    def score_pairs(v, t):
        assert len(v) <= 4
        seen.extend(zip(v.tolist(), t.tolist()))
        return itm[v, t]

    v2t, t2v, stats = itm_rerank(itc, score_pairs, k=k, batch_size=4)
    ev2t, et2v = brute_force_itm(itc.numpy(), itm.numpy(), k)
    np.testing.assert_array_equal(v2t.numpy(), ev2t.astype(np.float32))
    np.testing.assert_array_equal(t2v.numpy(), et2v.astype(np.float32))
    # every needed pair scored exactly once, in video-major order; the union of both directions' top-k
    assert len(seen) == len(set(seen)) == stats["pairs_total"] == stats["pairs_scored"]
    assert seen == sorted(seen)
    need = {(v, t) for v in range(6) for t in np.argsort(-itc[v].numpy())[:k]}
    need |= {(v, t) for t in range(9) for v in np.argsort(-itc[:, t].numpy())[:k]}
    assert set(seen) == need
    if k >= 9:  # k larger than both N: everything re-scored, no fill left
        assert (v2t != ITM_FILL).all() and (t2v != ITM_FILL).all()
        assert torch.equal(v2t, itm) and torch.equal(t2v, itm.t())
    else:
        assert ((v2t != ITM_FILL).sum(1) == k).all() and ((t2v != ITM_FILL).sum(1) == min(k, 6)).all()


def test_itm_order_inside_topk_is_itm_alone():
    from vtr.eval.metrics import retrieval_metrics

    # ITC prefers the wrong text for each video, but the right one is inside the top-2; ITM fixes it
    itc = torch.tensor([[0.5, 0.9, 0.1], [0.1, 0.5, 0.9], [0.9, 0.1, 0.5]])
    itm = torch.eye(3) * 10.0 - 5.0

    v2t, t2v, _ = itm_rerank(itc, lambda v, t: itm[v, t], k=2)
    m_itc = retrieval_metrics(itc.numpy(), [0, 1, 2], [[0], [1], [2]])
    m_itm = retrieval_metrics(v2t.numpy(), [0, 1, 2], [[0], [1], [2]], scores_t2v=t2v.numpy())
    assert m_itc["v2t_r1"] == 0.0 and m_itc["t2v_r1"] == 0.0
    assert m_itm["v2t_r1"] == 100.0 and m_itm["t2v_r1"] == 100.0


def test_topk_pairs_k_larger_than_n():
    v2t_idx, t2v_idx, pairs = topk_pairs(torch.randn(2, 3), k=128)
    assert v2t_idx.shape == (2, 3) and t2v_idx.shape == (3, 2) and len(pairs) == 6


def test_itm_rerank_resumes_from_store(tmp_path):
    g = torch.Generator().manual_seed(0)
    itc, itm = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    _, _, pairs = topk_pairs(itc, 3)
    calls = []

    def failing(v, t):
        calls.append(len(v))
        if len(calls) > 3:
            raise Interrupted
        return itm[v, t]

    store = ChunkedArrays(tmp_path / "itm", len(pairs), {"score": np.float32})
    with pytest.raises(Interrupted):
        itm_rerank(itc, failing, k=3, batch_size=2, store=store, commit_every=4)
    committed = store.done_mask().sum()
    assert committed == 4  # 3 batches of 2 scored; one chunk of 4 committed before the interruption
    scored = []
    store = ChunkedArrays(tmp_path / "itm", len(pairs), {"score": np.float32})
    v2t, t2v, stats = itm_rerank(itc, lambda v, t: (scored.append(len(v)), itm[v, t])[1], k=3, batch_size=2,
                                 store=store, commit_every=4)
    assert sum(scored) == stats["pairs_scored"] == len(pairs) - committed
    ref = itm_rerank(itc, lambda v, t: itm[v, t], k=3)
    assert torch.equal(v2t, ref[0]) and torch.equal(t2v, ref[1])
    assert store.complete()


# -------------------------------------------------------------------------------------- the cache
def test_interrupted_video_encoding_resumes(tmp_path):
    ref = run_eval(FakeModel(), tmp_path / "fresh")

    with pytest.raises(Interrupted):
        run_eval(FakeModel(fail_after_video_batches=2), tmp_path / "cache")
    store = ChunkedArrays(tmp_path / "cache" / "video", 10)
    assert store.done_mask().sum() == 4  # two batches of 2 committed

    resumed = FakeModel()
    res = run_eval(resumed, tmp_path / "cache")
    assert sum(resumed.videos_seen) == 6 and resumed.texts_seen == 0  # only the missing videos
    assert res.counts["videos_encoded"] == 6 and res.counts["videos_cached"] == 4
    for row in ("itm", "itc"):
        assert res.rows[row] == ref.rows[row]
    assert torch.equal(res.itm_v2t, ref.itm_v2t) and torch.equal(res.itm_t2v, ref.itm_t2v)

    again = FakeModel()
    res2 = run_eval(again, tmp_path / "cache")
    assert again.videos_seen == [] and again.texts_seen == 0 and again.itm_calls == 0  # all from cache
    assert res2.rows == ref.rows


def test_interrupted_itm_stage_resumes(tmp_path, monkeypatch):
    ref = run_eval(FakeModel(), tmp_path / "fresh", itm_batch_size=2)
    import vtr.eval.retrieval as R

    real = R.itm_rerank
    monkeypatch.setattr(R, "itm_rerank", lambda *a, **k: real(*a, **{**k, "commit_every": 4}))
    with pytest.raises(Interrupted):
        run_eval(FakeModel(fail_after_itm_calls=5), tmp_path / "cache", itm_batch_size=2)
    resumed = FakeModel()
    res = run_eval(resumed, tmp_path / "cache", itm_batch_size=2)
    assert resumed.videos_seen == [] and res.counts["pairs_scored"] == res.counts["pairs_total"] - 8
    assert res.rows == ref.rows


def test_itc_only_run_and_ranges(tmp_path):
    res = run_eval(FakeModel(), tmp_path / "c", itm=False)
    assert list(res.rows) == ["itc"] and res.itm_v2t is None
    assert (tmp_path / "c" / "video_itc").is_dir() and not (tmp_path / "c" / "video" / "tokens.npy").exists()
    full = run_eval(FakeModel(), tmp_path / "c")
    assert list(full.rows) == ["itm", "itc"]
    for row in full.rows.values():
        assert all(0 <= row[k] <= 100 for k in row if "_r" in k)
        assert row["t2v_mdr"] >= 1 and row["v2t_mnr"] >= 1
    assert full.rows["itc"] == res.rows["itc"]
    # an ITC-only rerun now reuses the complete ITM video cache
    again = FakeModel()
    run_eval(again, tmp_path / "c", itm=False)
    assert again.videos_seen == []


def test_chunked_arrays_ignores_uncommitted_rows(tmp_path):
    store = ChunkedArrays(tmp_path / "s", 6, {"x": np.float16})
    store.write(np.array([4, 5]), {"x": np.ones((2, 3), np.float32)})
    assert list(store.missing()) == [0, 1, 2, 3]
    assert store.read("x").dtype == np.float16
    # rows written but never committed (crash between flush and marker) stay missing
    mm = np.load(tmp_path / "s" / "x.npy", mmap_mode="r+")
    mm[0] = 7
    mm.flush()
    assert list(ChunkedArrays(tmp_path / "s", 6).missing()) == [0, 1, 2, 3]


# ------------------------------------------------------------------------- end to end (real pieces)
def _make_root(root, n=4, broken=None, missing=None):
    import json

    from tests.videos import indexed_frames, write_video

    folder = root / "msrvtt"
    (folder / "videos").mkdir(parents=True)
    entries = []
    for i in range(n):
        name = f"video{i}.mp4"
        if i == broken:
            (folder / "videos" / name).write_bytes(b"this is not a video file" * 10)
        elif i != missing:
            write_video(folder / "videos" / name, indexed_frames(10 + i, 32, 40), codec="mpeg4")
        entries.append({"video": name, "caption": f"A person does thing number {i}!", "duration": 0.5})
    (folder / "msrvtt_ret_test1k.json").write_text(json.dumps(entries))
    return root


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return _make_root(tmp_path_factory.mktemp("data"))


def test_eval_command_end_to_end(data_root, tmp_path):
    import json

    from vtr.eval.command import eval_command

    out = tmp_path / "out"
    torch.manual_seed(0)
    assert eval_command(dataset="msrvtt", root=str(data_root), model="vtr_test", out=str(out), k_test=2,
                        batch_size=3, workers=1, itm=True) == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["rows"]) == {"itm", "itc"}
    for row in res["rows"].values():
        for k, v in row.items():
            assert (1 <= v <= 4) if k.endswith(("mdr", "mnr")) else (0 <= v <= 100), (k, v)
    assert res["counts"]["videos"] == 4 and res["counts"]["texts"] == 4 and res["counts"]["videos_encoded"] == 4
    assert res["weights_checksum"] == "random-init" and res["partial"] is False
    assert len(res["annotation_sha256"]) == 64 and res["config"]["frames"] == 4 and res["config"]["max_txt_l"] == 32
    md = (out / "results.md").read_text()
    assert "| itm |" in md and "matching head that was never trained" in md  # random init, re-ranked as asked
    # same weights again: everything comes from the cache and the numbers are identical
    torch.manual_seed(0)
    eval_command(dataset="msrvtt", root=str(data_root), model="vtr_test", out=str(out), k_test=2, workers=0,
                 itm=True)
    res2 = json.loads((out / "results.json").read_text())
    assert res2["counts"]["videos_encoded"] == 0 and res2["counts"]["pairs_scored"] == 0
    assert res2["rows"] == res["rows"]
    # by default a head its config calls untrained (here random init) re-ranks nothing, and the results say why
    torch.manual_seed(0)
    eval_command(dataset="msrvtt", root=str(data_root), model="vtr_test", out=str(out), k_test=2, workers=0)
    res3 = json.loads((out / "results.json").read_text())
    assert res3["rows"] == {"itc": res["rows"]["itc"]} and res3["counts"]["videos_encoded"] == 0
    assert (res3["config"]["itm"], res3["config"]["itm_head_trained"]) == (False, False)
    assert "no itm row: the model's config says its matching head was not trained" in (out / "results.md").read_text()


def test_eval_of_released_weights_re_ranks_by_default(data_root, tmp_path, monkeypatch):
    """The releases' matching head is trained: the ITM row (the one the paper reports) needs no flag."""
    import json

    import vtr
    from vtr.eval.command import eval_command
    from vtr.models import registry

    model = vtr.create_model("vtr_test")
    entry = registry.WeightEntry("tiny_release", "vtr_test", "nobody/none", "tiny.pth", model.preprocess)
    monkeypatch.setitem(registry.WEIGHTS, "tiny_release", entry)
    monkeypatch.setenv("VTR_WEIGHTS", str(tmp_path))
    torch.save(model.state_dict(), tmp_path / "tiny.pth")
    eval_command(dataset="msrvtt", root=str(data_root), model="tiny_release", out=str(tmp_path / "out"), k_test=2,
                 workers=0)
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(res["rows"]) == {"itm", "itc"} and res["config"]["itm_head_trained"] is True
    assert "not trained" not in (tmp_path / "out" / "results.md").read_text()


def test_eval_cli_all_skips_absent_and_itc_only(data_root, tmp_path, monkeypatch, capsys):
    import json

    from vtr import cli

    out = tmp_path / "all"
    rc = cli.main(["eval", "--all", "--root", str(data_root), "--model", "vtr_test", "--out", str(out),
                   "--workers", "0", "--no-itm", "--k-test", "2"])
    assert rc == 0
    printed = capsys.readouterr().out
    for ds in ("didemo", "anet", "lsmdc", "msvd"):
        assert f"{ds}: skipped (no folder" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["results"]) == ["msrvtt"] and list(summary["results"]["msrvtt"]["rows"]) == ["itc"]
    assert "| msrvtt |" in (out / "summary.md").read_text()


def test_eval_missing_and_broken_videos(tmp_path, monkeypatch):
    import json

    from vtr.errors import VideoReadError, VtrError
    from vtr.eval.command import eval_command

    root = _make_root(tmp_path / "missing", n=3, missing=1)
    with pytest.raises(VtrError, match="1 of 3 video files are missing"):
        eval_command(dataset="msrvtt", root=str(root), model="vtr_test", out=str(tmp_path / "o1"), workers=0)
    eval_command(dataset="msrvtt", root=str(root), model="vtr_test", out=str(tmp_path / "o1"), workers=0,
                 allow_missing=True, itm=False)
    res = json.loads((tmp_path / "o1" / "results.json").read_text())
    assert res["partial"] is True and res["counts"]["videos"] == 2 and res["missing_videos"] == 1

    root = _make_root(tmp_path / "broken", n=3, broken=2)
    with pytest.raises(VtrError, match=r"1 of 3 video files cannot be read:\n  .*video2.mp4: "):  # before decoding
        eval_command(dataset="msrvtt", root=str(root), model="vtr_test", out=str(tmp_path / "o2"), workers=1,
                     batch_size=1)
    eval_command(dataset="msrvtt", root=str(root), model="vtr_test", out=str(tmp_path / "o2"), workers=0,
                 allow_missing=True, itm=False)
    res = json.loads((tmp_path / "o2" / "results.json").read_text())
    assert res["partial"] is True and res["counts"]["videos"] == 2
    assert [u["video"].rsplit("/", 1)[-1] for u in res["unreadable_videos"]] == ["video2.mp4"]
    # damage the opening check cannot see (past the first frame) still stops the decoding, named
    import vtr.data.retrieval

    monkeypatch.setattr(vtr.data.retrieval, "check_readable", lambda split, **kwargs: split)
    with pytest.raises(VideoReadError, match="video2.mp4"):  # raised in a worker, re-raised typed
        eval_command(dataset="msrvtt", root=str(root), model="vtr_test", out=str(tmp_path / "o3"), workers=1,
                     batch_size=1)


def test_the_data_is_checked_before_the_model_is_loaded(tmp_path, monkeypatch):
    """A mistyped path, a missing or a broken video is said before the weights load (with the released model, a
    1 GB download the first time)."""
    import vtr.eval.command as C
    from vtr.errors import VtrError

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the data was checked")

    monkeypatch.setattr(C, "load_eval_model", no_model)
    with pytest.raises(VtrError, match="annotation file not found"):
        C.eval_command(dataset="msrvtt", annotations=str(tmp_path / "typo.json"), videos=str(tmp_path))
    # a folder given for the file, or a name longer than a file name may be (an OSError traceback before)
    with pytest.raises(VtrError, match=f"cannot read the annotation file {tmp_path}: Is a directory"):
        C.eval_command(dataset="msrvtt", annotations=str(tmp_path), videos=str(tmp_path))
    with pytest.raises(VtrError, match="cannot read the annotation file .*: File name too long"):
        C.eval_command(dataset="msrvtt", annotations=str(tmp_path / ("x" * 300 + ".json")), videos=str(tmp_path))
    for kind in ("missing", "broken"):
        root = _make_root(tmp_path / kind, n=3, **{kind: 1})
        with pytest.raises(VtrError, match="video1.mp4"):
            C.eval_command(dataset="msrvtt", root=str(root))
        with pytest.raises(VtrError, match="video1.mp4"):  # --all: before the first benchmark runs
            C.eval_command(all=True, root=str(root))
    with pytest.raises(VtrError, match="no benchmark folder found"):
        C.eval_command(all=True, root=str(tmp_path / "empty"))


def test_published_numbers_and_tables():
    from vtr.eval.command import PUBLISHED_ITM, format_comparison_table, format_results_table

    assert PUBLISHED_ITM["videomamba_m16_25M"]["msrvtt"]["t2v"] == (35.6, 58.1, 69.5)
    assert PUBLISHED_ITM["videomamba_m16_5M"]["msvd"]["v2t"] == (57.5, 79.9, 85.4)
    import vtr

    for name in PUBLISHED_ITM:
        assert name in vtr.list_models(pretrained_only=True)
    row = {f"{d}_{k}": 10.0 for d in ("t2v", "v2t") for k in ("r1", "r5", "r10", "r_mean", "mdr", "mnr")}
    row["r_mean"] = 10.0
    assert format_results_table({"itm": row, "itc": row}).count("| 10.0") == 26
    table = format_comparison_table("videomamba_m16_25M", {"msrvtt": {"rows": {"itm": row, "itc": row}}})
    assert "35.6/58.1/69.5" in table and "-25.6" in table


def test_command_names_stay_importable_from_the_protocol_module():
    """`vtr eval` moved to vtr.eval.command; code that imported its names from vtr.eval.retrieval keeps working."""
    import vtr.eval.command as C
    import vtr.eval.retrieval as R
    from vtr.eval.retrieval import eval_command

    assert eval_command is C.eval_command and R.load_eval_model is C.load_eval_model
    assert R.PUBLISHED_ITM is C.PUBLISHED_ITM and R.itm_rerank is itm_rerank
    with pytest.raises(AttributeError, match="no_such_name"):
        R.no_such_name


def test_a_real_model_scores_a_batch_of_pairs_at_once_as_it_scores_them_pair_by_pair(tmp_path):
    """``itm_score_pairs`` (keys and values projected once per video) gives the ITM rows of ``itm_score`` on
    every pair gathered; a model without it (the contract's minimum) still evaluates."""
    import vtr

    model = vtr.create_model("vtr_test").eval()
    texts, t2v, v2t = fake_split(8, captions_per_video=2)
    calls = []

    class PairByPair:  # the same model without itm_score_pairs
        def __getattr__(self, name):
            if name == "itm_score_pairs":
                raise AttributeError(name)
            return getattr(model, name)

        def itm_score(self, *a):
            calls.append(a[0].shape[0])
            return model.itm_score(*a)

    kw = {"k_test": 5, "batch_size": 4, "workers": 0, "device": "cpu", "itm_batch_size": 16}
    paired = evaluate_retrieval(model, texts, FakeVideos(8, (4, 3, 32, 32)), t2v, v2t, fake_tokenize, tmp_path / "a", **kw)
    single = evaluate_retrieval(PairByPair(), texts, FakeVideos(8, (4, 3, 32, 32)), t2v, v2t, fake_tokenize, tmp_path / "b", **kw)
    assert calls and sum(calls) == paired.counts["pairs_total"]
    torch.testing.assert_close(paired.itm_v2t, single.itm_v2t, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(paired.itm_t2v, single.itm_t2v, rtol=1e-5, atol=1e-5)
    assert paired.rows["itm"] == single.rows["itm"]


def test_an_unknown_benchmark_is_named_before_the_model_loads(monkeypatch):
    import vtr.eval.command as command
    from vtr.errors import VtrError

    def no_model(*a, **k):
        raise AssertionError("the model was loaded (or downloaded) before the benchmark's name was checked")

    monkeypatch.setattr(command, "load_eval_model", no_model)
    with pytest.raises(VtrError, match="unknown retrieval dataset 'msrvt'; known: msrvtt"):
        command.eval_command(dataset="msrvt")
    # numbers no evaluation can use (--k-test 0 printed an ITM row of ties at -100 as a result)
    for kwargs, says in (({"k_test": 0}, "--k-test must be at least 1"), ({"batch_size": 0}, "--batch-size must be"),
                         ({"workers": -1}, "--workers must be 0"), ({"frames": 0}, "--frames must be at least 1")):
        with pytest.raises(VtrError, match=says):
            command.eval_command(dataset="msrvtt", **kwargs)


def test_an_interrupted_evaluation_says_its_cache_goes_on(tmp_path, monkeypatch):
    """Ctrl-C (or SIGTERM) in `vtr eval`: the cache keeps what was computed; the message says so. Before,
    "interrupted" alone, and a user might delete --out or start over without it."""
    import vtr.eval.command as C

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(C, "load_eval_model", interrupted)
    root = _make_root(tmp_path / "data", n=3)
    with pytest.raises(KeyboardInterrupt, match=f"^interrupted: the features computed so far are kept in "
                                                f"{tmp_path / 'out'}; the same command goes on from there$"):
        C.eval_command(dataset="msrvtt", root=str(root), out=str(tmp_path / "out"))


def test_the_evaluation_loads_videos_on_no_more_processes_than_its_cores(monkeypatch):
    """``os.cpu_count`` counts the host's CPUs: in a container given 2 of 64 cores an evaluation ran 4 loaders."""
    import os

    import vtr.device
    from vtr.eval.retrieval import default_workers

    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    for usable, workers in [(2, 2), (1, 1), (64, 4)]:
        monkeypatch.setattr(vtr.device, "usable_cores", lambda usable=usable: usable)
        assert default_workers() == workers
