"""The pretraining program: config handling, schedule, the real entry point under torchrun (2 gloo ranks),
bit-identical resume, and a loss that falls on a small learnable set."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pretrain.config import TrainConfig, load_config, parse_flags
from pretrain.train import build_model, get_lr, param_groups, train
from tests.pretrain.synthetic import colour_shards

REPO = Path(__file__).resolve().parents[2]
TINY = str(REPO / "pretrain" / "configs" / "tiny_cpu.yaml")


def _losses(out_dir) -> dict[int, dict]:
    rows = [json.loads(line) for line in (Path(out_dir) / "log.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in rows if "loss" in r}


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return colour_shards(tmp_path_factory.mktemp("colours"), num_clips=8, per_shard=4)


# ------------------------------------------------------------------------------------------------ config
def test_config_layers_and_unknown_keys(tmp_path):
    cfg = load_config(TINY, ["--lr", "3e-4", "--max_steps=7", "--grad-checkpointing", "--no-tensorboard"])
    assert (cfg.model, cfg.batch_size, cfg.lr, cfg.max_steps) == ("vtr_test", 8, 3e-4, 7)
    assert cfg.grad_checkpointing is True and cfg.tensorboard is False
    assert TrainConfig().weight_decay == 0.02 and TrainConfig().precision == "bf16"
    with pytest.raises(ValueError, match="unknown config key.*learning_rate"):
        load_config(TINY, ["--learning_rate", "1"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: 1e-3\nbatchsize: 4\n")
    with pytest.raises(ValueError, match="batchsize"):
        load_config(str(bad))
    with pytest.raises(ValueError, match="batch_size"):
        load_config(None, ["--batch_size", "eight"])
    assert parse_flags(["--a", "1", "--b", "--c=x"]) == {"a": "1", "b": True, "c": "x"}


@pytest.mark.parametrize("name", ["videomamba_m16_5M", "videomamba_m16_17M", "videomamba_m16_25M"])
def test_release_configs_load(name):
    cfg = load_config(str(REPO / "pretrain" / "configs" / f"{name}.yaml"))
    assert (cfg.model, cfg.lr, cfg.weight_decay, cfg.batch_size) == ("videomamba_middle_bert", 1e-4, 0.02, 128)


@pytest.mark.parametrize("fast_bf16, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_precision_trains_in_bf16_only_where_this_cpu_multiplies_it_faster(monkeypatch, fast_bf16, expected):
    import vtr.precision
    from pretrain.train import training_precision

    monkeypatch.setattr(vtr.precision, "cpu_bf16_is_faster", lambda: fast_bf16)
    cpu = torch.device("cpu")
    assert training_precision("auto", cpu) == expected
    assert training_precision("fp32", cpu) == "fp32" and training_precision("bf16", cpu) == "bf16"
    assert training_precision("fp16", cpu) == "fp32"  # no fp16 autocast on the CPU
    with pytest.raises(SystemExit, match="precision must be one of auto, bf16, fp16, fp32, got 'bf61'"):
        training_precision("bf61", cpu)


def test_a_run_in_auto_precision_exports_a_model_that_runs_as_it_trained(shards, tmp_path, monkeypatch, caplog):
    """auto on a fast-bf16 CPU trains under bf16 autocast and exports precision 'auto' (bf16 where it is fast);
    where bf16 is slow it trains in fp32 and the model says fp32."""
    import vtr
    import vtr.precision

    caplog.set_level(logging.INFO, logger="pretrain")
    for fast, model_precision in ((True, "auto"), (False, "fp32")):
        monkeypatch.setattr(vtr.precision, "cpu_bf16_is_faster", lambda fast=fast: fast)
        caplog.clear()
        out = tmp_path / f"fast{int(fast)}"
        cfg = load_config(TINY, overrides=dict(train_shards=str(shards), out_dir=str(out), batch_size=4,
                                               num_workers=0, max_steps=2, warmup_steps=1, ckpt_every=1000,
                                               log_every=1, shuffle_buffer=4, shards_per_chunk=2, precision="auto"))
        train(cfg)
        assert all(math.isfinite(r["loss"]) for r in _losses(out).values())
        assert f"{'bf16' if fast else 'fp32'} on cpu" in caplog.text  # what the run computed in
        assert vtr.create_model(str(out / "model")).cfg.precision == model_precision


def test_lr_schedule_warmup_cosine_floor():
    cfg = TrainConfig(lr=1e-3, min_lr_ratio=0.01)
    lrs = [get_lr(s, cfg, warmup_steps=10, total_steps=110) for s in range(120)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert lrs[60] == pytest.approx(1e-5 + 0.5 * (1e-3 - 1e-5))
    assert lrs[110] == pytest.approx(1e-5) and lrs[119] == pytest.approx(1e-5)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


def test_lr_schedule_restarts_at_text_start_as_umts_two_runs():
    cfg = TrainConfig(lr=1e-3, min_lr_ratio=0.01, text_start=40)
    lrs = [get_lr(s, cfg, warmup_steps=10, total_steps=140) for s in range(140)]
    assert lrs[9] == pytest.approx(1e-3) and lrs[39] < 2e-5  # stage 1 decays over its own steps
    assert lrs[40] == pytest.approx(1e-4) and lrs[49] == pytest.approx(1e-3)  # stage 2 warms up again from text_start
    assert lrs[95] == pytest.approx(1e-5 + 0.5 * (1e-3 - 1e-5)) and lrs[139] == pytest.approx(1e-5, rel=0.05)
    one = [get_lr(s, TrainConfig(lr=1e-3, min_lr_ratio=0.01, text_start=40, stage_lr_restart=False), 10, 140)
           for s in range(140)]
    assert one == [get_lr(s, TrainConfig(lr=1e-3, min_lr_ratio=0.01), 10, 140) for s in range(140)]


def test_no_weight_decay_on_biases_norms_and_1d():
    m = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    m.temp = torch.nn.Parameter(torch.tensor(0.07))
    decay, no_decay = param_groups(m, 0.02)
    assert decay["weight_decay"] == 0.02 and [p.shape for p in decay["params"]] == [(4, 4)]
    assert no_decay["weight_decay"] == 0.0 and len(no_decay["params"]) == 4


# ------------------------------------------------------------------------------------------------ training
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cfg(shards, out_dir, **kw) -> TrainConfig:
    base = dict(train_shards=str(shards), out_dir=str(out_dir), batch_size=4, num_workers=0, max_steps=6,
                warmup_steps=2, ckpt_every=3, log_every=1, shuffle_buffer=4, shards_per_chunk=2)
    return load_config(TINY, overrides={**base, **kw})


@pytest.mark.slow
def test_resume_gives_the_same_losses(shards, tmp_path):
    train(_cfg(shards, tmp_path / "full"))
    train(_cfg(shards, tmp_path / "cut", stop_after=3))
    assert sorted(_losses(tmp_path / "cut")) == [1, 2, 3] and not (tmp_path / "cut" / "model").exists()
    train(_cfg(shards, tmp_path / "cut"), resume=True)
    full, cut = _losses(tmp_path / "full"), _losses(tmp_path / "cut")
    assert sorted(cut) == list(range(1, 7))
    for step in range(1, 7):
        for key in ("loss", "vtc", "vtm", "mlm", "lr", "temp"):
            assert cut[step][key] == full[step][key], (step, key)
    ckpt = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 6 and ckpt["config"]["max_steps"] == 6 and ckpt["loaders"][0]["video"]["step"] == 6
    assert {"optimizer", "scheduler", "scaler", "rng", "model"} <= set(ckpt)


def test_ckpt_every_0_checkpoints_only_at_the_end_and_log_every_0_is_refused(shards, tmp_path):
    train(_cfg(shards, tmp_path / "end", max_steps=3, ckpt_every=0))
    assert torch.load(tmp_path / "end" / "checkpoint.pt", weights_only=False)["step"] == 3
    assert (tmp_path / "end" / "model").is_dir()
    with pytest.raises(SystemExit, match="log_every must be at least 1"):
        train(_cfg(shards, tmp_path / "nolog", log_every=0))
    # settings no run can have say which one, before anything is built (-5 steps spoke of text_start)
    for key, value, what in (("max_steps", -5, "0 (run epochs) or more"), ("batch_size", 0, "at least 1"),
                             ("lr", 0.0, "positive"), ("epochs", -1.0, "positive"),
                             ("grad_clip", -1.0, "0 (off) or more"),
                             ("num_workers", -1, "0 (load in the training process) or more"),
                             ("mlm_prob", 1.5, "above 0 and at most 1"), ("mask_ratio", 1.0, "at least 0 and below 1"),
                             ("loss_vtm", -1.0, "0 (off) or more")):
        with pytest.raises(SystemExit, match=re.escape(f"{key} must be {what}, got {value}")):
            train(_cfg(shards, tmp_path / "bad", **{key: value}))
    assert not (tmp_path / "bad").exists()


def test_shards_that_name_nothing_stop_the_run_before_it_starts(shards, tmp_path, monkeypatch):
    """A glob matching no file was a ValueError from the loader after the text weights had loaded."""
    import vtr

    built = []
    monkeypatch.setattr(vtr, "create_model", lambda *a, **k: built.append(1))  # what build_model calls
    for spec, says in ((str(tmp_path / "nowhere" / "*.tar"), "it matches no shard"),
                       (str(tmp_path), "it matches no shard"),  # a folder without .tar files
                       (f"{shards}::{tmp_path}/00007.tar", "1 of its ")):
        with pytest.raises(SystemExit, match=re.escape(f"train_shards {spec!r}: {says}")):
            train(_cfg(shards, tmp_path / "run", train_shards=spec))
    with pytest.raises(SystemExit, match="image_shards .*: it matches no shard"):
        train(_cfg(shards, tmp_path / "run", image_shards=str(tmp_path / "*.tar")))
    assert not built and not (tmp_path / "run").exists()


def test_a_device_this_machine_lacks_stops_the_run_before_it_starts(shards, tmp_path, monkeypatch):
    # "gpu" trained on the CPU without a word; "cuda" without a GPU was an AttributeError from torch.cuda
    with pytest.raises(SystemExit, match="unknown device 'gpu': use auto"):
        train(_cfg(shards, tmp_path / "gpu", device="gpu"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="device 'cuda': .*Use --device cpu"):
        train(_cfg(shards, tmp_path / "cuda", device="cuda"))
    assert not (tmp_path / "gpu").exists() and not (tmp_path / "cuda").exists()


@pytest.mark.parametrize("device, ddp, want", [("cuda:1", False, "cuda:1"), ("cuda", False, "cuda:0"),
                                                 ("cuda:1", True, "cuda:0"), ("auto", False, "cuda:0"),
                                                 ("cpu", False, "cpu")])
def test_the_run_takes_the_gpu_it_is_given_and_under_torchrun_its_local_one(monkeypatch, request, tmp_path, device,
                                                                            ddp, want):
    """cuda:1 trained on the CPU (only "cuda" was recognised); under torchrun each rank takes its local GPU."""
    from pretrain.train import setup_runtime

    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    # The run turns TF32 on for CUDA: put it back for the tests after this one. Not through monkeypatch: on a CUDA
    # build of torch, matmul.allow_tf32 is no attribute of its own, so monkeypatch's undo raised AttributeError and
    # left torch.cuda.is_available patched to True for every later test (a CPU-only machine "had" a GPU).
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32

    def put_tf32_back():
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32

    request.addfinalizer(put_tf32_back)
    if ddp:  # rank 0 of a torchrun group of one, without joining it
        for name in ("RANK", "LOCAL_RANK"):
            monkeypatch.setenv(name, "0")
        monkeypatch.setenv("WORLD_SIZE", "1")
        monkeypatch.setattr("torch.distributed.init_process_group", lambda *a, **k: None)
    else:
        monkeypatch.delenv("RANK", raising=False)
    rt = setup_runtime(TrainConfig(device=device, out_dir=str(tmp_path / "run"), precision="fp32"))
    assert str(rt.device) == want
    assert chosen == ([torch.device(want)] if want != "cpu" else [])


def test_captions_longer_than_the_model_reads_raise_max_txt_l_or_warn(tmp_path, caplog):
    # An unseen corpus with long captions: the words that tell clips apart come last and a fixed max_txt_l would
    # cut them off in training, eval and search alike.
    import vtr
    from pretrain.train import fit_text_length
    from vtr.models.registry import get_tokenizer
    from vtr.data.shards import sample_captions
    from vtr.data.text import normalize_caption

    long = ("a short video clip in which the whole of the frame, from its top left corner all the way down to its "
            "bottom right corner, stays one and the same solid colour, which is {}")
    shards = colour_shards(tmp_path / "long", num_clips=8, per_shard=4, caption=long)
    captions = sample_captions(str(shards))
    colours = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]
    assert sorted(captions) == sorted(normalize_caption(long.format(c)) for c in colours)
    train(_cfg(shards, tmp_path / "fit", max_steps=2, ckpt_every=0))
    model = vtr.create_model(str(tmp_path / "fit" / "model"))
    exported, tokenizer = model.preprocess.max_txt_l, get_tokenizer(model)
    need = max(len(tokenizer(c)["input_ids"]) for c in captions)
    assert exported == need > 32  # vtr_test reads 32 tokens unless told otherwise
    # a length set in the config is the user's: kept, with a warning that says what it cuts
    cfg = _cfg(shards, tmp_path / "fixed", max_txt_l=16)
    model = build_model(cfg)
    with caplog.at_level(logging.WARNING, logger="pretrain"):  # pretrain.train logs as "pretrain"
        assert fit_text_length(cfg, model, tokenizer) == 16
    assert model.preprocess.max_txt_l == 16 and "8 of 8 sampled training captions are longer than max_txt_l 16" \
        in caplog.text and f"set max_txt_l: {need}" in caplog.text
    # captions that fit change nothing
    short = colour_shards(tmp_path / "short", num_clips=4, per_shard=4)
    model = build_model(_cfg(short, tmp_path / "short_run"))
    assert fit_text_length(_cfg(short, tmp_path / "short_run"), model, tokenizer) == 32 == model.preprocess.max_txt_l


def test_decoding_workers_stop_with_the_run(shards, tmp_path, monkeypatch):
    # the loader's workers live across epochs and hold the decoded-clip cache: a run stops them as it ends, even
    # one that stops with an error whose traceback (kept by the caller) still holds train()'s frame
    import multiprocessing

    import vtr.losses as L
    from pretrain.guard import TrainingDiverged

    kw = dict(num_workers=1, max_steps=5, samples_per_epoch=8, decode_cache_mb=64, max_nonfinite=2)
    train(_cfg(shards, tmp_path / "ok", **kw))
    assert multiprocessing.active_children() == []
    log = [json.loads(line) for line in (tmp_path / "ok" / "log.jsonl").read_text().splitlines()]
    assert any(r.get("decode_cache_hits_video", 0) > 0 for r in log)  # epochs 2+ read clips from memory
    real = L.vtc_loss
    monkeypatch.setattr(L, "vtc_loss", lambda *a, **k: real(*a, **k) * float("nan"))
    with pytest.raises(TrainingDiverged) as stopped:
        train(_cfg(shards, tmp_path / "nan", **kw))
    assert stopped.tb is not None and multiprocessing.active_children() == []


@pytest.mark.slow
def test_loss_falls_on_a_learnable_set(shards, tmp_path):
    """8 clips of distinct solid colours captioned with their colour: the total loss falls by a fifth in 45
    steps and VTC leaves its random-init value. (Learning the pairing itself is measured by bench/learning.py.)"""
    train(_cfg(shards, tmp_path, batch_size=8, max_steps=45, warmup_steps=3, ckpt_every=1000, lr=2e-3,
               mlm_prob=0.15))
    log = _losses(tmp_path)
    first = sum(log[s]["loss"] for s in range(1, 6)) / 5
    last = sum(log[s]["loss"] for s in range(41, 46)) / 5
    first_vtc = sum(log[s]["vtc"] for s in range(1, 6)) / 5
    last_vtc = sum(log[s]["vtc"] for s in range(41, 46)) / 5
    assert last < 0.8 * first, (first, last)
    assert last_vtc < first_vtc - 0.5 and math.isfinite(last), (first_vtc, last_vtc)


@pytest.mark.slow
def test_torchrun_two_ranks_with_a_corrupt_sample(shards, tmp_path):
    import webdataset as wds

    import vtr

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    with wds.TarWriter(str(corrupt / "00000.tar")) as sink:
        sink.write({"__key__": "000000100", "mp4": b"\x00garbage" * 40, "txt": "broken clip"})
        for i, src in enumerate(sorted(Path(shards).glob("*.tar"))[:1]):
            for sample in wds.WebDataset(str(src), shardshuffle=False):
                sink.write({"__key__": "1" + sample["__key__"][1:], "mp4": sample["mp4"], "txt": sample["txt"]})
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(_free_port()),
           "-m", "pretrain.train", "--config", TINY, "--train_shards", f"{shards}::{corrupt}/00000.tar",
           "--out_dir", str(out), "--batch_size", "2", "--max_steps", "4", "--warmup_steps", "1",
           "--num_workers", "1", "--samples_per_epoch", "8", "--ckpt_every", "2", "--shuffle_buffer", "2",
           "--shards_per_chunk", "3", "--precision", "auto",  # auto: every rank takes rank 0's choice (a broadcast)
           "--rank_steps", "2", "--rank_k", "2"]  # the ranking stage under DDP: its own wrapper, frozen encoders
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = _losses(out)
    assert sorted(log) == [1, 2, 3, 4] and all(math.isfinite(r["loss"]) for r in log.values())
    assert log[4]["corrupt_samples"] >= 1
    assert log[1]["epoch"] == 0.5  # 8 samples per epoch / (2 ranks x 2) = 2 steps per epoch
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2 and len(ckpt["loaders"]) == 2
    model = vtr.create_model(str(out / "model"))
    assert model.text_mlm_head is not None and model.cfg.precision in ("auto", "fp32")
    ranked = _ranking_names(model)
    for name, tensor in model.state_dict().items():  # the checkpoint is the last step's, before the ranking stage
        assert torch.equal(tensor, ckpt["model"][name]) != (name in ranked), name
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["rank_check"]["queries"] for r in rows if "rank_check" in r] == [2 * 2 * 2 * 1]  # 2 ranks, 2 dirs


def _run_until_signalled(cmd, out: Path, sig, env, whole_group: bool) -> tuple[subprocess.Popen, str]:
    """Start ``cmd``, send ``sig`` once its log has three steps, and return the process (ended) and its stderr."""
    import signal
    import time

    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    def logged_steps() -> int:  # whole lines only: the run may be writing the next one
        log = out / "log.jsonl"
        lines = log.read_text().splitlines(keepends=True) if log.is_file() else []
        return sum(line.endswith("\n") and '"loss"' in line for line in lines)

    try:
        while logged_steps() < 3:
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            time.sleep(0.05)
        # a terminal's Ctrl+C reaches the trainer and its loading worker (its process group); a scheduler's SIGTERM
        # to torchrun reaches the ranks through torchrun, which runs them in sessions of their own
        os.killpg(proc.pid, sig) if whole_group else proc.send_signal(sig)
        _, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc, err


@pytest.mark.slow
def test_ctrl_c_stops_after_the_step_with_a_checkpoint_that_resume_goes_on_from(shards, tmp_path):
    """Before, Ctrl+C lost every step since the last ``ckpt_every`` checkpoint (here: the whole run)."""
    import signal

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    flags = ["--config", TINY, "--train_shards", str(shards), "--batch_size", "2", "--max_steps", "2000",
             "--warmup_steps", "1", "--ckpt_every", "0", "--log_every", "1", "--num_workers", "1",
             "--shuffle_buffer", "2", "--shards_per_chunk", "1"]
    cut = tmp_path / "cut"
    proc, err = _run_until_signalled([sys.executable, "-m", "pretrain.train", *flags, "--out_dir", str(cut)], cut,
                                     signal.SIGINT, env, whole_group=True)
    assert proc.returncode == 130, err[-3000:]
    stopped = torch.load(cut / "checkpoint.pt", weights_only=False)["step"]  # ckpt_every 0: none before the end
    assert 3 <= stopped < 2000 and max(_losses(cut)) == stopped  # the step in flight finished, and no other
    assert (f"stopped at step {stopped} of 2000 on SIGINT, with a checkpoint in {cut / 'checkpoint.pt'}: the same "
            "command with --resume goes on from there") in err
    assert "Traceback" not in err and not (cut / "model").exists()
    # said once, when the signal came: by the trainer, not again by its worker (which leaves signals to it)
    assert err.count("SIGINT: stopping after this step with a checkpoint (again: stop at once, without one)") == 1
    # --resume goes on from there, as a run that was never stopped did (the two side by side, a core each)
    runs = []
    for out, more in ((cut, ["--resume"]), (tmp_path / "whole", [])):
        log = open(tmp_path / f"{out.name}.log", "w+")
        runs.append((subprocess.Popen([sys.executable, "-m", "pretrain.train", *flags, "--out_dir", str(out),
                                       "--stop_after", str(stopped + 2), *more], cwd=REPO, env=env,
                                      stdout=subprocess.DEVNULL, stderr=log), log))
    try:
        for run, log in runs:
            assert run.wait(timeout=300) == 0, (log.seek(0), log.read()[-3000:])
    finally:
        for run, log in runs:
            if run.poll() is None:
                run.kill()
            run.wait()
            log.close()
    whole, resumed = _losses(tmp_path / "whole"), _losses(cut)
    assert sorted(resumed) == list(range(1, stopped + 3))
    for step in (stopped + 1, stopped + 2):
        assert resumed[step]["loss"] == whole[step]["loss"], step


@pytest.mark.slow
def test_sigterm_to_torchrun_stops_both_ranks_after_the_same_step_with_a_checkpoint(shards, tmp_path):
    import signal

    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(_free_port()),
           "-m", "pretrain.train", "--config", TINY, "--train_shards", str(shards), "--out_dir", str(out),
           "--batch_size", "2", "--max_steps", "2000", "--warmup_steps", "1", "--ckpt_every", "0", "--log_every", "1",
           "--num_workers", "1", "--shuffle_buffer", "2", "--shards_per_chunk", "1"]
    proc, err = _run_until_signalled(cmd, out, signal.SIGTERM, env, whole_group=False)
    assert proc.returncode != 0  # torchrun reports its ranks as stopped
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    stopped = ckpt["step"]
    assert ckpt["world_size"] == 2 and [pos["video"]["step"] for pos in ckpt["loaders"]] == [stopped, stopped]
    assert err.count(f"stopped at step {stopped} of 2000 on SIGTERM") == 1, err[-3000:]  # rank 0 says it


@pytest.mark.gpu
def test_torchrun_on_cuda_trains_every_loss_in_bf16_and_exports(shards, tmp_path):
    """The GPU path of the real entry point: one NCCL rank under torchrun, precision auto (bf16 autocast on CUDA),
    VTC + VTM + MLM, then the ranking stage under its own DDP wrapper; the exported model runs on the CPU."""
    import vtr

    out = tmp_path / "run"
    # the repository first, then what bench/gpu.sh installed beside the machine's packages (mamba_ssm, webdataset)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "1", "--master-port", str(_free_port()),
           "-m", "pretrain.train", "--config", TINY, "--train_shards", str(shards), "--out_dir", str(out),
           "--device", "cuda", "--precision", "auto", "--batch_size", "4", "--max_steps", "4", "--warmup_steps", "1",
           "--num_workers", "1", "--samples_per_epoch", "8", "--ckpt_every", "2", "--shuffle_buffer", "2",
           "--rank_steps", "2", "--rank_k", "2"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = _losses(out)
    assert sorted(log) == [1, 2, 3, 4]
    for row in log.values():
        assert all(math.isfinite(row[k]) for k in ("loss", "vtc", "vtm", "mlm")), row
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False, map_location="cpu")
    assert ckpt["world_size"] == 1
    model = vtr.create_model(str(out / "model")).eval()
    assert model.cfg.precision == "auto"  # trained in bf16: fp32 would be recorded as fp32
    frames = torch.rand(1, model.cfg.vision.num_frames, 3, model.cfg.vision.img_size, model.cfg.vision.img_size)
    with torch.no_grad():
        assert torch.isfinite(model.encode_video(frames).embedding).all()


def _ranking_names(model) -> set[str]:
    """The state-dict names the ranking stage trains (the fusion layers and the ITM head)."""
    from pretrain.train import ranking_parameters

    ids = {id(p) for p in ranking_parameters(model)}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def test_the_ranking_stage_trains_the_fusion_layers_alone_and_decides_whether_the_head_reranks(shards, tmp_path):
    """After the last step, rank_steps of the listwise loss change the fusion layers and the ITM head and nothing
    else; its check (ITM re-ranking against ITC on its last batches) is logged and sets itm_trained."""
    import vtr

    out = tmp_path / "run"
    train(_cfg(shards, out, max_steps=3, ckpt_every=0, rank_steps=4, rank_k=3, log_every=2))
    model = vtr.create_model(str(out / "model"))
    before = torch.load(out / "checkpoint.pt", weights_only=False)["model"]
    ranked = _ranking_names(model)
    assert any(".crossattention." in n for n in ranked) and "itm_head.weight" in ranked
    assert not any(n.startswith("vision_encoder.") or ".layer.0." in n for n in ranked)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name]) != (name in ranked), name
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    stage = [r for r in rows if r.get("stage") == "rank"]
    assert [r["step"] for r in stage] == [5, 7, 7] and all(math.isfinite(r["loss_rank"]) for r in stage[:2])
    check = stage[-1]["rank_check"]
    assert check["queries"] == 1 * 2 * 4 and check["k"] == 3  # the last quarter: 1 batch of 4, both directions
    assert 0 <= check["itc_r1"] <= 100 and 0 <= check["itm_r1"] <= 100
    # t2v and v2t, 4 clips, 3 candidates: ln 3 per query + the entropy of 4 positives among the distinct pairs
    assert math.log(3) < check["chance_loss"] < math.log(3) + math.log(2)
    assert model.cfg.itm_trained == (check["loss"] < 0.5 * check["chance_loss"])


def test_a_ranking_stage_whose_loss_stayed_near_chance_exports_an_untrained_head(tmp_path, caplog):
    from pretrain.train import export_model

    import vtr

    model = vtr.create_model("vtr_test", with_mlm_head=True)
    cfg = TrainConfig(rank_steps=10)
    recent_vtm = [0.1] * 20  # a VTM loss far below chance: trained by the VTM test, not by the ranking stage's
    check = {"itc_r1": 80.0, "itm_r1": 70.0, "queries": 64, "chance_loss": 1.95, "steps": 10, "k": 4}
    with caplog.at_level(logging.WARNING, logger="pretrain"):
        export_model(model, tmp_path / "flat", cfg, recent_vtm, "fp32", {**check, "loss": 1.2})
    assert vtr.create_model(str(tmp_path / "flat")).cfg.itm_trained is False
    assert "offers no re-ranking" in caplog.text
    export_model(model, tmp_path / "learned", cfg, [], "fp32", {**check, "loss": 0.7})
    assert vtr.create_model(str(tmp_path / "learned")).cfg.itm_trained is True


@pytest.mark.slow
def test_masked_student_distillation_checkpointing_and_eval(shards, tmp_path):
    """Row-masked student + frozen teacher (a vtr folder) + gradient checkpointing + zero-shot eval, 2 steps."""
    import vtr
    from vtr.models.checkpoint import save_vtr
    from vtr.models.registry import config_to_dict

    teacher = vtr.create_model("vtr_test", with_mlm_head=True)
    save_vtr(teacher, tmp_path / "teacher", config_to_dict(teacher.cfg, architecture="vtr_test"))
    captions = [json.loads(line) for line in (Path(shards).parent / "captions.jsonl").read_text().splitlines()]
    (tmp_path / "ann.json").write_text(json.dumps(captions))
    train(_cfg(shards, tmp_path / "run", max_steps=2, warmup_steps=1, mask_type="row", mask_ratio=0.5,
               teacher=str(tmp_path / "teacher"), init=str(tmp_path / "teacher"), grad_checkpointing=True,
               eval_every=2, eval_annotation=str(tmp_path / "ann.json"),
               eval_videos=str(Path(shards).parent / "videos"), eval_k_test=3))
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["distill"]) and r["distill"] < 4 for r in rows if "loss" in r)
    evals = [r for r in rows if "eval" in r]
    assert len(evals) == 1 and set(evals[0]["eval"]) == {"itm", "itc"}
    assert 0 <= evals[0]["eval"]["itc"]["t2v_r1"] <= 100
    assert list((tmp_path / "run" / "eval" / "step00000002").glob("itm_k3_*"))  # ITM re-ranked eval_k_test candidates


@pytest.mark.slow
def test_umt_token_alignment_to_a_vtr_teacher_then_unmasked_phase(shards, tmp_path):
    """Tube-masked student, each visible token through clip_decoder aligned to the frozen teacher's token at the
    same position (UMT), for mask_steps steps; then the unmasked phase without the teacher."""
    import vtr
    from vtr.models.checkpoint import save_vtr
    from vtr.models.registry import config_to_dict

    from pretrain.train import build_model, build_teacher

    teacher = vtr.create_model("vtr_test", with_mlm_head=True)
    save_vtr(teacher, tmp_path / "teacher", config_to_dict(teacher.cfg, architecture="vtr_test"))

    def run(name, **kw):
        cfg = _cfg(shards, tmp_path / name, max_steps=4, warmup_steps=1, mask_type="tube", mask_ratio=0.75,
                   teacher=str(tmp_path / "teacher"), loss_distill=0.0, **kw)
        torch.manual_seed(cfg.seed)  # what train() does before building: the same initial weights
        init = build_model(cfg, build_teacher(cfg, torch.device("cpu"))).vision_encoder.clip_decoder[0].head
        train(cfg)
        return init, vtr.create_model(str(tmp_path / name / "model")).vision_encoder.clip_decoder[0].head

    init, trained = run("uta", mask_steps=3, loss_uta=1.0)
    log = _losses(tmp_path / "uta")
    assert all("uta" in log[s] and 0 < log[s]["uta"] < 4 for s in (1, 2, 3)) and "distill" not in log[1]
    assert "uta" not in log[4]  # the unmasked phase
    # each row says which part of its steps trained the masked student (bench.learning's masked steps/s reads it)
    assert [log[s]["masked_fraction"] for s in (1, 2, 3, 4)] == [1.0, 1.0, 1.0, 0.0]
    assert trained.out_features == teacher.cfg.vision.embed_dim  # the teacher's token width, not CLIP's 512
    assert not torch.equal(trained.weight, init.weight)  # clip_decoder learned
    init, untouched = run("no_uta", loss_uta=0.0)
    assert untouched.out_features == 512 and torch.equal(untouched.weight, init.weight)  # frozen when unused


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_a_step_does_no_work_for_padding_no_caption_uses(pooling):
    """Captions come padded to max_txt_l; a step's losses (VTC, VTM with its hard negatives, MLM with its random
    masking) are the same at any padding, and its work does not grow with padding that no caption of the batch
    uses."""
    from torch.utils.flop_counter import FlopCounterMode

    import vtr
    from pretrain.train import Pretrainer, Ranker
    from vtr.models.registry import get_tokenizer

    torch.manual_seed(0)
    model = vtr.create_model("vtr_test", with_mlm_head=True, text_pooling=pooling).eval()  # no dropout
    tokenizer = get_tokenizer(model)
    cfg = TrainConfig(vtm_start=0, mlm_start=0, loss_ramp=0, vtm_samples=0, mlm_samples=0)
    pretrainer = Pretrainer(model, tokenizer, cfg, rank=0, world_size=1)
    texts = ["a dog catches a frisbee", "two red squares move up", "a cat", "three green circles shrink slowly"]
    frames = torch.randn(len(texts), 4, 3, 32, 32)
    outs, flops = [], []
    for length in (16, 48):
        batch = tokenizer(texts, padding="max_length", max_length=length, truncation=True, return_tensors="pt")
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            outs.append(pretrainer(frames, batch["input_ids"], batch["attention_mask"],
                                   torch.Generator().manual_seed(0), step=10))
        flops.append(counter.get_total_flops())
    assert {"vtc", "vtm", "mlm"} <= set(outs[0])
    for name in ("vtc", "vtm", "mlm", "loss"):
        torch.testing.assert_close(outs[1][name], outs[0][name], rtol=1e-5, atol=1e-6)
    assert flops[1] == flops[0]
    # the ranking stage's step too
    ranker, outs, flops = Ranker(model, k=2), [], []
    for length in (16, 48):
        batch = tokenizer(texts, padding="max_length", max_length=length, truncation=True, return_tensors="pt")
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            outs.append(ranker(frames, batch["input_ids"], batch["attention_mask"]))
        flops.append(counter.get_total_flops())
    torch.testing.assert_close(outs[1]["loss"], outs[0]["loss"], rtol=1e-5, atol=1e-6)
    assert flops[1] == flops[0]


def test_umt_stage_one_weights_and_mask_ratio_by_step(monkeypatch):
    """Before text_start only the teacher losses have weight (UMT's stage 1); from it the text losses start, VTM and
    MLM not before their own starts, and the mask ratio turns to vl_mask_ratio."""
    from types import SimpleNamespace

    from pretrain.train import Pretrainer, video_keep_mask
    from vtr import masking

    cfg = TrainConfig(text_start=5, vtm_start=2, mlm_start=8, loss_ramp=0, loss_uta=1.0, loss_distill=0.0,
                      mask_type="tube", mask_ratio=0.8, vl_mask_ratio=0.5)
    w = [Pretrainer.weights(SimpleNamespace(cfg=cfg), s) for s in (0, 4, 5, 7, 8)]
    assert [x["vtc"] for x in w] == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert [x["vtm"] for x in w] == [0.0, 0.0, 1.0, 1.0, 1.0]  # vtm_start 2 < text_start: starts with the text
    assert [x["mlm"] for x in w] == [0.0, 0.0, 0.0, 0.0, 1.0]  # its own start, later
    assert all(x["uta"] == 1.0 for x in w)
    ratios = []
    monkeypatch.setattr(masking, "tube_mask", lambda b, t, p, ratio, generator=None: ratios.append(ratio))
    model = SimpleNamespace(cfg=SimpleNamespace(vision=SimpleNamespace(patch_size=16)))
    for step in (0, 4, 5, 9):
        video_keep_mask(cfg, model, 2, 4, 32, torch.Generator(), step)
    assert ratios == [0.8, 0.8, 0.5, 0.5]
    ratios.clear()
    video_keep_mask(TrainConfig(text_start=5, mask_type="tube", mask_ratio=0.8), model, 2, 4, 32, torch.Generator(), 9)
    assert ratios == [0.8]  # vl_mask_ratio -1: the one ratio throughout


@pytest.mark.slow
def test_umt_stage_one_trains_the_video_side_alone(shards, tmp_path, monkeypatch):
    """text_start: the first steps run only the token alignment (the text encoder is not even called), then the
    contrastive loss joins; a text_start without a teacher loss, or at the run's end, is refused up front."""
    import vtr
    from vtr.models.checkpoint import save_vtr
    from vtr.models.registry import config_to_dict
    from vtr.models.retrieval import VideoTextModel

    teacher = vtr.create_model("vtr_test", with_mlm_head=True)
    save_vtr(teacher, tmp_path / "teacher", config_to_dict(teacher.cfg, architecture="vtr_test"))
    text_calls = []
    encode_text = VideoTextModel.encode_text
    monkeypatch.setattr(VideoTextModel, "encode_text", lambda self, *a, **k: text_calls.append(1) or
                        encode_text(self, *a, **k))
    common = dict(max_steps=4, warmup_steps=1, mask_type="tube", mask_ratio=0.75, vl_mask_ratio=0.5,
                  teacher=str(tmp_path / "teacher"), loss_distill=0.0, vtm_start=0, mlm_start=0)
    train(_cfg(shards, tmp_path / "run", text_start=2, loss_uta=1.0, **common))
    log = _losses(tmp_path / "run")
    assert set(log[1]) >= {"uta", "loss"} and not {"vtc", "vtm", "mlm"} & set(log[1] | log[2])
    assert log[1]["loss"] == pytest.approx(log[1]["uta"])
    assert {"vtc", "vtm", "mlm", "uta"} <= set(log[3]) and {"vtc", "uta"} <= set(log[4])
    assert len(text_calls) >= 2  # steps 3 and 4 (and the MLM pass), none before
    # stage 2 unmasked: rows of 3 steps (2 of them stage 1), then the last step alone
    train(_cfg(shards, tmp_path / "unmasked2", text_start=2, loss_uta=1.0, log_every=3,
               **{**common, "vl_mask_ratio": 0.0}))
    log = _losses(tmp_path / "unmasked2")
    assert (log[3]["masked_fraction"], log[4]["masked_fraction"]) == (0.6667, 0.0)
    n_before = len(text_calls)
    with pytest.raises(SystemExit, match="teacher losses alone"):
        train(_cfg(shards, tmp_path / "bad1", text_start=2, loss_uta=0.0, **common))
    with pytest.raises(SystemExit, match="never train"):
        train(_cfg(shards, tmp_path / "bad2", text_start=4, loss_uta=1.0, **common))
    assert len(text_calls) == n_before


def test_a_checkpoint_that_finds_the_disk_full_is_said_as_such(tmp_path, monkeypatch):
    """torch.save on a full disk fails with "unexpected pos 576 vs 534" (seen on a full tmpfs): the run stops with
    an error that says the disk is full, how much the checkpoint needs, and that the checkpoint before is kept.
    A failure with room to spare is not blamed on the disk."""
    import errno
    import shutil
    from collections import namedtuple

    import pretrain.train as T
    from vtr.errors import VtrError

    state = {"model": {"w": torch.zeros(1024, 1024)}, "step": 5}  # 4 MiB
    path = tmp_path / "checkpoint.pt"
    usage = namedtuple("usage", "total used free")

    def failing(obj, f):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    monkeypatch.setattr(T.torch, "save", failing)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(2**30, 2**30 - 2**20, 2**20))  # 1 MiB free
    with pytest.raises(VtrError, match=r"cannot write .*checkpoint.pt: no space left on its disk \(1 MiB free, "
                                       r"about 4 MiB needed\); free some space, then run again$"):
        T.save_checkpoint(path, state)
    path.write_bytes(b"the step before")
    with pytest.raises(VtrError, match="the checkpoint before is kept: free some space, then run again with "
                                       "--resume"):
        T.save_checkpoint(path, state)
    assert path.read_bytes() == b"the step before" and sorted(os.listdir(tmp_path)) == ["checkpoint.pt"]
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(2**40, 0, 2**40))
    with pytest.raises(RuntimeError, match="unexpected pos"):  # room enough: not the disk
        T.save_checkpoint(path, state)

    def enospc(obj, f):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(T.torch, "save", enospc)  # a quota: the disk says it is full whatever df says
    with pytest.raises(VtrError, match="no space left on its disk"):
        T.save_checkpoint(path, state)
