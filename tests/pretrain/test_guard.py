"""A diverging pretraining run stops with an error that names the step and what to change, and exports nothing;
a non-finite step is skipped and counted; the whole recipe's loss schedule; one command line for both entry
points."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pretrain.config import load_config
from pretrain.guard import DivergenceGuard, TrainingDiverged, mean_pairwise_cosine
from pretrain.train import RunLog, loss_weight, train
from tests.pretrain.synthetic import colour_shards

REPO = Path(__file__).resolve().parents[2]
TINY = str(REPO / "pretrain" / "configs" / "tiny_cpu.yaml")
CHANCE_8 = math.log(8)


def _guard(window=5, max_nonfinite=3) -> DivergenceGuard:
    return DivergenceGuard(global_batch=8, window=window, max_nonfinite=max_nonfinite, advice="Lower the lr.")


# ------------------------------------------------------------------------------------------------ the guard
def test_collapse_after_learning_stops_naming_the_step():
    guard, step = _guard(), 0
    for vtc in [2.0, 1.6, 1.2, 0.9, 0.7, 0.6, 0.6, 0.5]:  # learns: the window mean falls far below ln 8
        step += 1
        guard.observe_vtc(step, vtc)
    spike = [3.0, CHANCE_8, CHANCE_8, CHANCE_8]
    for vtc in spike:  # the spike and three steps at chance: not yet a whole window
        step += 1
        guard.observe_vtc(step, vtc)
    with pytest.raises(TrainingDiverged, match=r"step 13: .*at chance.*ln\(global batch\) = 2\.079.*Lower the lr"):
        guard.observe_vtc(13, CHANCE_8 - 1e-4)


def test_healthy_noisy_run_and_early_chance_do_not_stop():
    guard = _guard()
    values = [CHANCE_8] * 10 + [2.0, 1.9, 2.05, 1.7, 1.5, 1.6, 1.2, 2.02, 1.0, 0.9, 2.03, 0.8]  # no full window back
    for step, vtc in enumerate(values, 1):
        guard.observe_vtc(step, vtc)
    guard.check_learned(len(values))  # it fell: no error


def test_run_that_never_learns_is_not_exported_as_fine():
    guard = _guard(window=4)
    for step in range(1, 4 * 5):  # one step short of five windows: too short to judge
        guard.observe_vtc(step, CHANCE_8)
    guard.check_learned(19)
    guard.observe_vtc(20, CHANCE_8)
    with pytest.raises(TrainingDiverged, match="step 20: .*never fell.*learned nothing"):
        guard.check_learned(20)


def test_nonfinite_steps_are_skipped_then_stop():
    guard = _guard(max_nonfinite=3)
    assert not guard.step_is_finite(1, float("nan"), 1.0)
    assert not guard.step_is_finite(2, 1.0, float("inf"))
    assert guard.step_is_finite(3, 1.0, 1.0)  # the count of consecutive ones restarts
    assert not guard.step_is_finite(4, float("nan"), float("nan"))
    assert not guard.step_is_finite(5, float("nan"), float("nan"))
    with pytest.raises(TrainingDiverged, match="step 6: 3 steps in a row"):
        guard.step_is_finite(6, float("nan"), float("nan"))
    assert guard.nonfinite_total == 5


def test_guard_state_round_trips():
    a = _guard()
    for step, vtc in enumerate([2.0, 1.0, 0.8, 0.7, 0.6, 0.5], 1):
        a.observe_vtc(step, vtc)
    b = _guard()
    b.load_state(a.state())
    assert b.state() == a.state()


def test_mean_pairwise_cosine():
    assert mean_pairwise_cosine(torch.ones(4, 3) / math.sqrt(3)) == pytest.approx(1.0)
    assert mean_pairwise_cosine(torch.eye(4)) == pytest.approx(0.0)


def test_loss_weight_start_and_ramp():
    assert [loss_weight(s, 2.0, start=3, ramp=4) for s in range(9)] == [0, 0, 0, 0.5, 1.0, 1.5, 2.0, 2.0, 2.0]
    assert loss_weight(0, 1.0, start=0, ramp=0) == 1.0 and loss_weight(5, 0.0, start=0, ramp=0) == 0.0


# ------------------------------------------------------------------------------------------------ real runs
@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return colour_shards(tmp_path_factory.mktemp("colours"), num_clips=8, per_shard=4)


def _cfg(shards, out_dir, **kw):
    base = dict(train_shards=str(shards), out_dir=str(out_dir), batch_size=8, num_workers=0, max_steps=6,
                warmup_steps=2, ckpt_every=1000, log_every=1, shuffle_buffer=4, shards_per_chunk=2, mlm_prob=0.15)
    return load_config(TINY, overrides={**base, **kw})


def _log(out_dir) -> list[dict]:
    return [json.loads(line) for line in (Path(out_dir) / "log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_a_config_made_to_diverge_stops_and_exports_nothing(shards, tmp_path):
    """lr 1 without clipping: every embedding turns to one direction and VTC sits at ln 8 from step ~10 on."""
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match=r"step 40: .*learned nothing.*lr is 1.*--grad_clip 1\.0"):
        train(_cfg(shards, out, lr=1.0, grad_clip=0.0, max_steps=40, collapse_window=5))
    assert not (out / "model").exists()
    log = _log(out)
    assert "diverged" in log[-1] and log[-1]["step"] == 40
    assert max(r["video_cos"] for r in log[-5:-1]) > 0.99  # the batch's video embeddings collapsed


@pytest.mark.slow
def test_nonfinite_steps_are_skipped_and_counted(shards, tmp_path, monkeypatch):
    import vtr.losses as L

    real, calls = L.vtc_loss, []

    def flaky_vtc(*args, **kwargs):  # non-finite on the 2nd and 3rd training steps
        calls.append(1)
        loss = real(*args, **kwargs)
        return loss * float("nan") if len(calls) in (2, 3) else loss

    monkeypatch.setattr(L, "vtc_loss", flaky_vtc)
    out = tmp_path / "run"
    train(_cfg(shards, out, max_steps=5, collapse_window=0))
    log = _log(out)
    assert [r["skipped_steps"] for r in log] == [0, 1, 2, 2, 2]
    assert math.isfinite(log[-1]["loss"]) and (out / "model" / "config.json").is_file()
    monkeypatch.setattr(L, "vtc_loss", lambda *a, **k: real(*a, **k) * float("nan"))
    opened = []
    monkeypatch.setattr(RunLog, "close", lambda self, close=RunLog.close: (opened.append(self.file), close(self)))
    with pytest.raises(TrainingDiverged, match="step 3: 3 steps in a row"):
        train(_cfg(shards, tmp_path / "nan", max_steps=5, max_nonfinite=3))
    assert len(opened) == 1 and opened[0].closed  # the stopped run closed its log.jsonl
    assert "diverged" in _log(tmp_path / "nan")[-1]


@pytest.mark.slow
def test_whole_recipe_schedule_and_whether_the_matching_head_learned(shards, tmp_path, monkeypatch, caplog):
    """VTM and MLM start late, on a subset of the batch. The exported config says the ITM head was trained only when
    the VTM loss ended clearly below chance (the entropy of 1 positive per 2 negatives)."""
    import vtr
    import vtr.losses as L

    out = tmp_path / "run"
    train(_cfg(shards, out, max_steps=4, vtm_start=2, mlm_start=2, loss_ramp=2, vtm_samples=3, mlm_samples=2))
    log = _log(out)
    assert "vtm" not in log[1] and "mlm" not in log[1]  # steps 1-2: VTC only
    assert {"vtm", "mlm"} <= set(log[2]) and {"vtm", "mlm"} <= set(log[3])
    weights = {"vtc": 1.0, "vtm": 0.5, "mlm": 0.5}  # step 3: the first of a 2-step ramp
    assert log[2]["loss"] == pytest.approx(sum(w * log[2][k] for k, w in weights.items()), rel=1e-5)
    assert min(r["vtm"] for r in log[2:]) > 0.9 * 0.6365  # two steps teach the head nothing ...
    assert vtr.create_model(str(out / "model")).cfg.itm_trained is False  # ... and the model says so
    assert vtr.create_model(str(out / "model")).cfg.precision == "fp32"  # trained in fp32: --precision auto keeps it
    assert "the matching head did not learn" in caplog.text

    real = L.vtm_loss
    monkeypatch.setattr(L, "vtm_loss", lambda *a, **k: real(*a, **k) * 0.5)  # a head whose loss left chance
    learned = tmp_path / "learned"
    train(_cfg(shards, learned, max_steps=3, vtm_samples=3))
    assert max(r["vtm"] for r in _log(learned)) < 0.9 * 0.6365
    assert vtr.create_model(str(learned / "model")).cfg.itm_trained is True


# ------------------------------------------------------------------------------------------------ command line
@pytest.mark.parametrize("cmd", [[sys.executable, "-m", "pretrain.train", "--help"],
                                 [sys.executable, "-m", "vtr.cli", "train", "--help"]])
def test_help_answers_with_every_key(cmd):
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage: python -m pretrain.train" in proc.stdout
    for key in ("--grad_clip FLOAT", "--collapse_window INT", "--loss_uta FLOAT", "--vtm_samples INT"):
        assert key in proc.stdout


@pytest.mark.parametrize("cmd", [[sys.executable, "-m", "pretrain.train"], [sys.executable, "-m", "vtr.cli", "train"]])
def test_both_command_lines_reject_the_same_unknown_key(cmd):
    proc = subprocess.run(cmd + ["--config", TINY, "--learning_rate", "1"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0 and "unknown config key(s) in command line: learning_rate" in proc.stderr
