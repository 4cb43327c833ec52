import copy
import json

import pytest
import torch

import vtr
from bench.matching import listwise_loss, main, seen_corpus, trial
from vtr.data.synthetic import Combo, generate_corpus, read_heldout
from vtr.data.video import read_frames
from vtr.models.checkpoint import save_vtr
from vtr.models.registry import config_to_dict


def _features(model, n: int = 6) -> dict:
    torch.manual_seed(0)
    pre = model.preprocess
    clips = torch.randn(n, pre.num_frames, 3, pre.img_size, pre.img_size)
    ids = torch.randint(1000, 2000, (n, 6))
    ids[:, 0], ids[:, -1] = 101, 102
    mask = torch.ones_like(ids)
    with torch.no_grad():
        video = model.encode_video(clips, return_tokens=True)
        text = model.encode_text(ids, mask)
    return {"tokens": video.tokens, "frames": video.frame_embeds, "hidden": text.hidden, "text": text.embedding,
            "mask": mask, "ids": ids}


def test_listwise_objective_trains_the_fusion_layers_and_the_head():
    """The candidates themselves are tested with vtr.losses.ranking_pairs; here the bench's use of them."""
    model = vtr.create_model("vtr_test")
    f = _features(model)
    loss = listwise_loss(model, f, torch.arange(6), k=3)
    loss.backward()
    cross = [p for n, p in model.text_encoder.named_parameters() if ".crossattention." in n]
    assert torch.isfinite(loss) and model.itm_head.weight.grad.abs().sum() > 0
    assert cross and all(p.grad is not None and p.grad.abs().sum() > 0 for p in cross)
    losses = trial(model, f, hard=True, steps=30, lr=1e-3, batch=6, objective="listwise", k=3)
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5  # six pairs to tell apart: the head learns them


def test_trial_in_bf16_learns_as_fp32_does():
    """Autocast caches its bf16 copies of the weights until the outermost autocast region ends: a region around the
    whole loop would train the float32 weights while every forward kept reading their first copies."""
    model = vtr.create_model("vtr_test")
    f = _features(model)
    runs = {}
    for bf16 in (False, True):
        m = copy.deepcopy(model)
        runs[bf16] = trial(m, f, hard=True, steps=40, lr=3e-3, batch=6, objective="listwise", k=3, bf16=bf16)
        assert m.itm_head.weight.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
    fp32_last, bf16_last = sum(runs[False][-5:]) / 5, sum(runs[True][-5:]) / 5
    first = sum(runs[False][:5]) / 5
    assert fp32_last < 0.7 * first  # the head learns these six pairs
    assert abs(bf16_last - fp32_last) < 0.2 * first, (runs[False][-5:], runs[True][-5:])


@pytest.mark.slow
def test_seen_split_renders_training_combinations_afresh_and_the_bench_scores_it(tmp_path):
    run = tmp_path / "run"
    generate_corpus(run / "corpus", size="tiny", seed=0)
    corpus = run / "corpus"
    train_rows = [json.loads(line) for line in (corpus / "train" / "captions.jsonl").read_text().splitlines()]
    shown = {(r["colour"], r["shape"], r["count"], r["motion"]) for r in train_rows}
    heldout = {(e["colour"], e["shape"], e["count"], e["motion"]) for e in read_heldout(corpus)}

    seen = seen_corpus(corpus, 5, run / "seen_5")
    entries = read_heldout(seen)
    combos = [(e["colour"], e["shape"], e["count"], e["motion"]) for e in entries]
    assert len(set(combos)) == 5 and set(combos) <= shown and not set(combos) & heldout
    for e, combo in zip(entries, combos):
        assert e["caption"] == Combo(*combo).caption and e["twin_caption"] == Combo(*combo).twin.caption
        frames = read_frames(seen / "heldout" / "videos" / e["video"], 4, sample="middle")
        for r in train_rows:  # a new render: no training clip of the same combination has its frames
            if (r["colour"], r["shape"], r["count"], r["motion"]) == combo:
                other = read_frames(corpus / "train" / "videos" / r["video"], 4, sample="middle")
                assert not torch.equal(frames, other)
    stamp = (seen / "heldout" / "annotations.json").stat().st_mtime_ns
    assert seen_corpus(corpus, 5, run / "seen_5") == seen  # written once
    assert (seen / "heldout" / "annotations.json").stat().st_mtime_ns == stamp
    with pytest.raises(SystemExit, match="training clips show"):
        seen_corpus(corpus, len(shown) + 1, run / "too_many")

    model = vtr.create_model("vtr_test")
    save_vtr(model, run / "recipe" / "model", config_to_dict(model.cfg, architecture="vtr_test"))
    out = tmp_path / "matching.json"
    assert main(["--run", str(run), "--clips", "12", "--steps", "2", "--batch", "6", "--starts", "own",
                 "--negatives", "hard", "--seen", "5", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["seen"] == str(seen)
    (row,) = result["rows"]
    assert set(row["seen"]) == {"itc_t2v_r1", "itc_v2t_r1", "itm_t2v_r1", "itm_v2t_r1"}
    assert all(0 <= v <= 100 for v in row["seen"].values())
