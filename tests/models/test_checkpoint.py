"""Strict loading of checkpoints in the released layout, vtr's own format, and the error messages."""

import json
from pathlib import Path

import pytest
import torch

import vtr
from vtr.cli import main as cli_main
from vtr.errors import CheckpointError
from vtr.models.checkpoint import filter_checkpoint, load_checkpoint

RELEASE_KEYS = Path(__file__).parents[1] / "fixtures" / "official_keys_release.tsv"
DTYPES = {"float32": torch.bfloat16, "int64": torch.int64}  # the release stores its floats in bf16


def release_layout():
    rows = RELEASE_KEYS.read_text().splitlines()[1:]
    for row in rows:
        key, shape, dtype = row.split("\t")
        yield key, tuple(int(s) for s in shape.strip("()").split(",") if s.strip()), dtype


def fake_release_checkpoint(seed=0):
    """Every key, shape and dtype of official_keys_release.tsv, random bf16 values (the release's storage)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape, dtype in release_layout():
        if dtype == "int64":
            sd[key] = torch.arange(shape[-1]).expand(*shape).clone()
        else:
            sd[key] = (torch.randn(shape, generator=g) * 0.02).to(torch.bfloat16)
    # BERT's MLM decoder is tied to the word embeddings, so the release stores the same values twice.
    sd["text_encoder.cls.predictions.decoder.weight"] = sd["text_encoder.bert.embeddings.word_embeddings.weight"]
    return sd


@pytest.fixture(scope="module")
def release_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("release") / "videomamba_m16_25M_f8_res224.pth"
    torch.save(fake_release_checkpoint(), path)
    return path


def test_listing_is_the_release():
    rows = list(release_layout())
    assert len(rows) == 950
    assert sum(k.startswith("clip_teacher.") for k, _, _ in rows) == 152


@pytest.fixture(scope="module")
def release_model(release_file):
    return vtr.create_model("videomamba_m16_25M", pretrained=str(release_file))


@pytest.mark.slow
def test_release_checkpoint_loads_strictly_into_middle(release_model, release_file):
    report = release_model.load_report
    assert report.used == len(release_model.state_dict()) == 790  # 791 retrieval keys less position_ids
    assert len(report.dropped["CLIP teacher (pretraining only)"]) == 152
    assert len(report.dropped["MLM head (pretraining only; model built without it)"]) == 7
    assert report.dropped["position_ids buffer (positions are computed)"] == ["text_encoder.bert.embeddings.position_ids"]
    assert report.cast["bfloat16 -> float32"] == 790
    sd = torch.load(release_file, weights_only=True)
    got = release_model.state_dict()
    assert all(v.dtype == torch.float32 and not v.is_meta for v in got.values())
    assert torch.equal(got["vision_encoder.layers.31.mixer.A_b_log"], sd["vision_encoder.layers.31.mixer.A_b_log"].float())
    assert torch.equal(
        got["text_encoder.encoder.layer.11.crossattention.self.key.weight"],
        sd["text_encoder.bert.encoder.layer.11.crossattention.self.key.weight"].float(),
    )


@pytest.mark.slow
def test_convert_keeps_the_mlm_head_and_gives_identical_outputs(release_model, release_file, tmp_path):
    out = tmp_path / "converted"
    assert cli_main(["convert", str(release_file), str(out)]) == 0
    converted = vtr.create_model(str(out))  # a vtr folder: config.json + model.safetensors
    assert converted.text_mlm_head is not None  # kept so a converted release can continue pretraining
    assert converted.text_mlm_head.predictions.decoder.weight is converted.text_encoder.embeddings.word_embeddings.weight
    sd = torch.load(release_file, weights_only=True)
    assert torch.equal(
        converted.state_dict()["text_mlm_head.predictions.transform.dense.weight"],
        sd["text_encoder.cls.predictions.transform.dense.weight"].float(),
    )
    assert converted.preprocess == release_model.preprocess
    for k, v in release_model.state_dict().items():
        assert torch.equal(converted.state_dict()[k], v), k

    # A short, small input keeps this fast; the encoders resize position embeddings on the fly.
    frames = torch.randn(1, 2, 3, 32, 32)
    ids = torch.tensor([[101, 1037, 3899, 102, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        a_v, b_v = release_model.encode_video(frames, return_tokens=True), converted.encode_video(frames, return_tokens=True)
        a_t, b_t = release_model.encode_text(ids, mask), converted.encode_text(ids, mask)
        assert torch.equal(a_v.frame_embeds, b_v.frame_embeds)
        assert torch.equal(a_t.embedding, b_t.embedding)
        assert torch.equal(
            release_model.itm_score(a_t.hidden, mask, a_v.tokens), converted.itm_score(b_t.hidden, mask, b_v.tokens)
        )


def test_checkpoint_for_other_frames_and_resolution_is_resized(tmp_path):
    """A release-layout checkpoint at 4 frames / 32 px loads into a model built for 6 frames / 48 px."""
    src = vtr.create_model("vtr_test")
    model = vtr.create_model("vtr_test", pretrained=_tiny_release_like(src), num_frames=6, img_size=48)
    resized = "\n".join(model.load_report.resized)
    assert "vision_encoder.pos_embed (1, 5, 32) -> (1, 10, 32)" in resized
    assert "vision_encoder.temporal_pos_embedding (1, 4, 32) -> (1, 6, 32)" in resized
    with torch.no_grad():
        out = model.encode_video(torch.randn(1, 6, 3, 48, 48))
    assert out.frame_embeds.shape == (1, 6, 16)


def _tiny_release_like(model):
    """vtr_test weights written under the release's names (text_encoder.bert., clip_teacher, cls head)."""
    sd = {}
    for k, v in model.state_dict().items():
        if k.startswith("text_encoder."):
            k = "text_encoder.bert." + k[len("text_encoder."):]
        sd[k] = v.to(torch.bfloat16) if v.is_floating_point() else v
    sd["text_encoder.bert.embeddings.position_ids"] = torch.arange(128)[None]
    sd["clip_teacher.proj"] = torch.zeros(3)
    return sd


def test_missing_key_is_named():
    model = vtr.create_model("vtr_test")
    sd = _tiny_release_like(model)
    del sd["vision_encoder.layers.1.mixer.A_b_log"]
    with pytest.raises(CheckpointError, match=r"missing.*vision_encoder\.layers\.1\.mixer\.A_b_log"):
        load_checkpoint(model, sd)


def test_unknown_key_is_named():
    model = vtr.create_model("vtr_test")
    sd = _tiny_release_like(model)
    sd["vision_encoder.layers.0.mixer.A_log_extra"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"no rule explains.*A_log_extra"):
        load_checkpoint(model, sd)


def test_wrong_shape_is_named():
    model = vtr.create_model("vtr_test")
    sd = _tiny_release_like(model)
    sd["vision_proj.weight"] = torch.zeros(3, 3)
    with pytest.raises(CheckpointError, match=r"vision_proj\.weight"):
        load_checkpoint(model, sd)


def test_wrapped_and_ddp_prefixed_checkpoints_load():
    model = vtr.create_model("vtr_test")
    sd = {"module." + k: v for k, v in _tiny_release_like(model).items()}
    other = vtr.create_model("vtr_test")
    report = load_checkpoint(other, {"model": sd})
    assert report.renamed["DDP prefix 'module.' stripped"] == len(sd)
    for k, v in model.state_dict().items():
        assert torch.equal(other.state_dict()[k], v.to(torch.bfloat16).to(v.dtype)), k


def _official_training_checkpoint(path, weights, victim: Path):
    """A checkpoint as the official training code saves it (tasks/pretrain.py: model, optimizer, scheduler, scaler,
    config, epoch, global_step), its config an ``easydict.EasyDict`` from a module this process does not have, plus
    an ``argparse.Namespace``, a numpy scalar and an object whose unpickling would delete ``victim``."""
    import argparse
    import shutil
    import sys
    import types

    import numpy as np

    easydict = types.ModuleType("easydict")

    class EasyDict(dict):
        def __init__(self, d=None):
            super().__init__(d or {})
            self.__dict__.update(self)

    EasyDict.__module__, EasyDict.__qualname__ = easydict.__name__, "EasyDict"
    easydict.EasyDict = EasyDict

    class Deletes:
        def __reduce__(self):
            return shutil.rmtree, (str(victim),)

    sys.modules["easydict"] = easydict  # only while saving: pickle records the class by its name
    try:
        torch.save({"model": weights, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4}]},
                    "scheduler": {"last_epoch": 3}, "scaler": {}, "config": EasyDict({"lr": 1e-4, "bf16": True}),
                    "args": argparse.Namespace(seed=42), "best": np.float64(0.5), "epoch": 3, "global_step": 900,
                    "hook": Deletes()}, path)
    finally:
        del sys.modules["easydict"]


def test_a_checkpoint_of_the_official_training_code_loads_and_runs_none_of_its_code(tmp_path, caplog):
    """weights_only refuses such files (EasyDict is neither importable here nor allowed, and a dict subclass cannot
    take its items); they are read again with every class torch does not allow as inert data."""
    import logging
    import pickle

    from vtr.models.checkpoint import PickledObject, load_pickled_checkpoint

    src = vtr.create_model("vtr_test")
    victim = tmp_path / "keep"
    victim.mkdir()
    path = tmp_path / "ckpt_best.pth"
    _official_training_checkpoint(path, _tiny_release_like(src), victim)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)

    with caplog.at_level(logging.INFO, logger="vtr.models.checkpoint"):
        obj = load_pickled_checkpoint(path)
    assert victim.is_dir()  # the reduce to shutil.rmtree came back as data, never called
    assert isinstance(obj["hook"], PickledObject) and obj["hook"].global_name == "shutil.rmtree"
    assert isinstance(obj["config"], PickledObject) and obj["config"].global_name == "easydict.EasyDict"
    assert dict(obj["config"]) == {"lr": 1e-4, "bf16": True}
    assert obj["epoch"] == 3 and obj["optimizer"]["param_groups"][0]["lr"] == 1e-4
    assert "easydict.EasyDict" in caplog.text and "none of their code ran" in caplog.text

    model = vtr.create_model("vtr_test", pretrained=str(path))  # the weights under "model", strictly
    for k, v in src.state_dict().items():
        assert torch.equal(model.state_dict()[k], v.to(torch.bfloat16).to(v.dtype)), k
    assert cli_main(["convert", str(path), str(tmp_path / "converted"), "--model", "vtr_test"]) == 0
    assert victim.is_dir()


@pytest.mark.parametrize("content, says", [(b"not a checkpoint at all", "Unsupported operand"),
                                           (b"PK\x03\x04 cut short", "failed reading zip archive")])
def test_a_file_that_is_no_checkpoint_is_said_in_one_line(tmp_path, content, says):
    path = tmp_path / "model.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as e:
        vtr.create_model("vtr_test", pretrained=str(path))
    message = str(e.value)
    assert message.startswith(f"cannot read checkpoint {path}: not a PyTorch checkpoint, or a damaged one (")
    assert says in message and "weights_only" not in message and "\n" not in message


def test_filter_reports_every_key():
    model = vtr.create_model("vtr_test")
    sd = _tiny_release_like(model)
    out, report = filter_checkpoint(sd, model)
    dropped = sum(len(v) for v in report.dropped.values())
    assert report.used + dropped == len(sd)
    assert "dropped" in report.summary() and "CLIP teacher" in report.summary()


@pytest.mark.gpu
def test_whole_model_on_cuda_matches_cpu(mamba_ssm_scan_calls):
    """The retrieval model moved to CUDA gives the CPU's embeddings and match scores: fp32 within 1e-4, bf16 autocast
    at cosine ≥ 0.999 (the CPU bf16 bar), with mamba_ssm's kernel running every scan."""
    model = vtr.create_model("vtr_test").eval()
    frames = torch.randn(2, model.cfg.vision.num_frames, 3, model.cfg.vision.img_size, model.cfg.vision.img_size)
    ids = torch.randint(1000, 2000, (2, 9))
    mask = torch.ones_like(ids)

    def run(m, device, autocast=False):
        with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=autocast):
            v = m.encode_video(frames.to(device), return_tokens=True)
            t = m.encode_text(ids.to(device), mask.to(device))
            return v.embedding.float().cpu(), t.embedding.float().cpu(), \
                m.itm_score(t.hidden, mask.to(device), v.tokens).float().cpu()

    cpu = run(model, "cpu")
    gpu = run(model.cuda(), "cuda")
    assert len(mamba_ssm_scan_calls) == 2 * model.cfg.vision.depth  # both directions of every layer
    for a, b in zip(cpu, gpu):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)
    bf16 = run(model, "cuda", autocast=True)
    for a, b in zip(cpu[:2], bf16[:2]):
        assert torch.nn.functional.cosine_similarity(a, b).min() >= 0.999


def test_the_weights_checksum_is_the_sha256_of_names_dtypes_shapes_and_bytes():
    """What index manifests pin: it must not move when the hashing code does (an index built before would refuse
    its own model)."""
    import hashlib

    from torch import nn

    from vtr.models.checkpoint import state_dict_checksum

    m = nn.Sequential(nn.Linear(3, 2), nn.LayerNorm(2)).to(torch.bfloat16)
    m.register_buffer("empty", torch.zeros(0))
    m.register_buffer("strided", torch.arange(12.0).view(3, 4).t())  # not contiguous
    want = hashlib.sha256()
    for name, t in sorted(m.state_dict().items()):
        want.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        want.update(t.contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    assert state_dict_checksum(m) == want.hexdigest()


def test_safetensors_are_read_into_aligned_memory_of_their_own(tmp_path, monkeypatch):
    """vtr's reader gives what safetensors gives, each tensor in 64-byte aligned memory of its own (not views of
    the mapped file, which the loader then copied: the weights twice in memory)."""
    from safetensors.torch import load_file, save_file

    from vtr.errors import CheckpointError
    from vtr.models import checkpoint

    tensors = {"f32": torch.randn(3, 5), "bf16": torch.randn(7).bfloat16(), "f16": torch.randn(2, 3).half(),
               "i64": torch.arange(5), "mask": torch.tensor([True, False, True]), "u8": torch.arange(3).byte(),
               "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 4), "odd": torch.randn(13).bfloat16()}
    path = tmp_path / "w.safetensors"
    save_file(tensors, str(path), metadata={"format": "vtr"})
    got, want = checkpoint.read_safetensors(path), load_file(str(path))
    assert got.keys() == want.keys() == tensors.keys()
    for k in got:
        assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape and torch.equal(got[k], want[k]), k
        assert got[k].numel() == 0 or got[k].data_ptr() % 64 == 0, k
        assert got[k].untyped_storage().nbytes() == got[k].numel() * got[k].element_size(), k  # not a view
    got["f32"].add_(1)  # writable, and the file is not
    assert torch.equal(checkpoint.read_safetensors(path)["f32"], tensors["f32"])
    monkeypatch.delitem(checkpoint.SAFETENSORS_DTYPES, "BF16")  # a dtype it does not know: safetensors reads it
    assert torch.equal(checkpoint.read_safetensors(path)["bf16"], tensors["bf16"])
    monkeypatch.undo()

    path.write_bytes(path.read_bytes()[:-6])
    with pytest.raises(CheckpointError, match="cut short"):
        checkpoint.read_safetensors(path)
    path.write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        checkpoint.read_safetensors(path)


def test_a_zip_checkpoint_is_mapped_not_read_and_an_old_one_still_loads(tmp_path):
    """torch's zip checkpoints (every release) are mapped, so the tensors a model does not use (the release's CLIP
    teacher) are never read; a checkpoint in torch's pre-1.6 format cannot be mapped and is read as before."""
    from vtr.models.checkpoint import load_pickled_checkpoint

    weights = {"a": torch.randn(64, 64), "b": torch.arange(7)}
    zipped, legacy = tmp_path / "zip.pth", tmp_path / "legacy.pth"
    torch.save(weights, zipped)
    torch.save(weights, legacy, _use_new_zipfile_serialization=False)
    got = load_pickled_checkpoint(zipped)
    maps = Path("/proc/self/maps").read_text() if Path("/proc/self/maps").exists() else ""
    assert not maps or str(zipped) in maps  # the file is mapped while its tensors live
    old = load_pickled_checkpoint(legacy)
    assert all(torch.equal(got[k], weights[k]) and torch.equal(old[k], weights[k]) for k in weights)


def test_convert_resizes_a_vtr_folder_in_its_own_architecture(tmp_path):
    """`vtr convert FOLDER OUT --num-frames 16`: before, the folder was read into the default architecture (M with
    bert-base) and failed on its first tensor of another width ("shape mismatch for itm_head.weight")."""
    from vtr.models.checkpoint import save_vtr
    from vtr.models.registry import config_to_dict

    src = vtr.create_model("vtr_test")
    save_vtr(src, tmp_path / "own", config_to_dict(src.cfg, architecture="vtr_test"))
    assert cli_main(["convert", str(tmp_path / "own"), str(tmp_path / "x16"), "--num-frames", "16"]) == 0
    out = vtr.create_model(str(tmp_path / "x16"))
    assert out.architecture == "vtr_test" and out.preprocess.num_frames == 16
    assert json.loads((tmp_path / "x16" / "config.json").read_text())["weights"] is None  # no released weights
    for k, v in src.state_dict().items():
        if "temporal_pos_embedding" not in k:  # the one tensor resized
            assert torch.equal(out.state_dict()[k], v), k
