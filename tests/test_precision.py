"""Inference precision: the auto rule, and bf16 embeddings of a released-layout checkpoint against fp32."""

import json

import pytest
import torch

import vtr
import vtr.precision as precision_mod
from vtr.errors import VtrError
from vtr.precision import autocast, resolve_precision


@pytest.mark.parametrize("fast, device, want", [
    (True, "cpu", "bf16"), (False, "cpu", "fp32"), (False, "cuda", "bf16"), (False, "cuda:1", "bf16"),
    (True, torch.device("cpu"), "bf16"), (False, None, "fp32"), (True, "mps", "fp32"),
])
def test_auto_is_bf16_only_where_fast(monkeypatch, fast, device, want):
    monkeypatch.delenv("VTR_PRECISION", raising=False)
    monkeypatch.setattr(precision_mod, "cpu_bf16_is_faster", lambda: fast)
    assert resolve_precision("auto", device) == want
    assert resolve_precision(None, device) == want
    assert resolve_precision("FP32", device) == "fp32" and resolve_precision("bf16", device) == "bf16"


def test_env_and_bad_values(monkeypatch):
    monkeypatch.setenv("VTR_PRECISION", "fp32")
    monkeypatch.setattr(precision_mod, "cpu_bf16_is_faster", lambda: True)
    assert resolve_precision(None, "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"  # an explicit value wins over the environment
    with pytest.raises(VtrError, match="unknown precision 'fp16'"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="resolved"):
        autocast("auto", "cpu")


def test_a_model_trained_in_fp32_runs_in_fp32_under_auto(monkeypatch, tmp_path):
    from vtr.models.checkpoint import save_vtr
    from vtr.models.registry import config_to_dict

    monkeypatch.delenv("VTR_PRECISION", raising=False)
    monkeypatch.setattr(precision_mod, "cpu_bf16_is_faster", lambda: True)
    model = vtr.create_model("vtr_test")
    assert model.cfg.precision == "auto" and resolve_precision("auto", "cpu", model) == "bf16"
    model.cfg.precision = "fp32"
    save_vtr(model, tmp_path / "m", config_to_dict(model.cfg, architecture="vtr_test"))
    loaded = vtr.create_model(str(tmp_path / "m"))  # the folder keeps it
    assert loaded.cfg.precision == "fp32"
    assert resolve_precision("auto", "cpu", loaded) == "fp32" and resolve_precision("auto", "cuda", loaded) == "fp32"
    assert resolve_precision("bf16", "cpu", loaded) == "bf16"  # an explicit value still wins
    with pytest.raises(ValueError, match="precision must be one of"):
        vtr.create_model("vtr_test", precision="bf16")


def test_native_bf16_is_chosen_only_where_a_gemm_measures_it_faster_once_per_machine(monkeypatch, tmp_path):
    monkeypatch.setenv("VTR_CACHE", str(tmp_path))
    probes = []

    def probe(fp32_s, bf16_s):
        def run():
            probes.append(1)
            return {"fp32_s": fp32_s, "bf16_s": bf16_s}
        return run

    def verdict():
        precision_mod.cpu_bf16_is_faster.cache_clear()
        return precision_mod.cpu_bf16_is_faster()

    try:
        monkeypatch.setattr(precision_mod, "cpu_has_native_bf16", lambda: False)
        monkeypatch.setattr(precision_mod, "_probe", probe(1.0, 0.1))
        assert verdict() is False and not probes  # no bf16 instructions: not even measured
        monkeypatch.setattr(precision_mod, "cpu_has_native_bf16", lambda: True)
        monkeypatch.setattr(precision_mod, "_probe", probe(0.020, 0.012))
        assert verdict() is True and len(probes) == 1
        assert (tmp_path / "cpu_bf16.json").is_file()
        monkeypatch.setattr(precision_mod, "_probe", probe(0.020, 0.030))
        assert verdict() is True and len(probes) == 1  # the kept verdict: one machine answers the same every time
        (tmp_path / "cpu_bf16.json").unlink()
        assert verdict() is False and len(probes) == 2  # bf16 slower than fp32 here: fp32
        (tmp_path / "cpu_bf16.json").unlink()
        monkeypatch.setattr(precision_mod, "_probe", probe(0.020, 0.018))
        assert verdict() is False  # 1.1x is not worth bf16's rounding
        (tmp_path / "cpu_bf16.json").write_text("not json")
        monkeypatch.setattr(precision_mod, "_probe", probe(0.020, 0.010))
        assert verdict() is True  # a damaged file is measured again
        kept = json.loads((tmp_path / "cpu_bf16.json").read_text())
        (tmp_path / "cpu_bf16.json").write_text(json.dumps({k: {"fp32_s": "fast"} for k in kept}))
        monkeypatch.setattr(precision_mod, "_probe", probe(0.020, 0.030))
        assert verdict() is False  # ... and so is a damaged entry
    finally:
        precision_mod.cpu_bf16_is_faster.cache_clear()


def test_the_probe_times_real_gemms():
    import math

    for dtype in (torch.float32, torch.bfloat16):
        t = precision_mod.gemm_seconds(dtype, 64, 32, 48, repeats=2)
        assert t > 0 and math.isfinite(t)


def test_cpu_flag_detection_reads_cpuinfo(monkeypatch, tmp_path):
    info = tmp_path / "cpuinfo"
    real_open = open

    def fake_open(path, *a, **k):
        return real_open(info if path == "/proc/cpuinfo" else path, *a, **k)

    monkeypatch.setattr("builtins.open", fake_open)
    for flags, want in (("fpu avx2 avx512f avx512bw", ()), ("fpu avx512f avx512_bf16", ("avx512_bf16",)),
                        ("fpu amx_tile amx_bf16 avx512_bf16", ("avx512_bf16", "amx_bf16"))):
        info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        precision_mod.native_bf16_flags.cache_clear()
        assert precision_mod.native_bf16_flags() == want
        assert precision_mod.cpu_has_native_bf16() is bool(want)
    precision_mod.native_bf16_flags.cache_clear()


def test_cpus_of_one_name_with_and_without_amx_are_probed_apart(monkeypatch, tmp_path):
    # Cloud VMs often call CPUs with and without AMX by one generic name, and their bf16 GEMMs differ by 5x: a
    # verdict measured on one must not be served to the other through a shared home directory.
    monkeypatch.setenv("VTR_CACHE", str(tmp_path))
    monkeypatch.setattr(precision_mod, "_cpu_model", lambda: "Intel(R) Xeon(R) Processor")
    machines = {("avx512_bf16",): {"fp32_s": 0.020, "bf16_s": 0.030},
                ("avx512_bf16", "amx_bf16"): {"fp32_s": 0.020, "bf16_s": 0.004}}
    try:
        for flags in [("avx512_bf16",), ("avx512_bf16", "amx_bf16"), ("avx512_bf16",)]:
            monkeypatch.setattr(precision_mod, "native_bf16_flags", lambda flags=flags: flags)
            monkeypatch.setattr(precision_mod, "_probe", lambda flags=flags: dict(machines[flags]))
            precision_mod.cpu_bf16_is_faster.cache_clear()
            assert precision_mod.cpu_bf16_is_faster() is ("amx_bf16" in flags)
        assert len(json.loads((tmp_path / "cpu_bf16.json").read_text())) == 2
    finally:
        precision_mod.cpu_bf16_is_faster.cache_clear()


def _released_layout(model):
    """vtr's state dict in the release's layout and storage: BERT under ``text_encoder.bert.``, floats in bf16."""
    out = {}
    for k, v in model.state_dict().items():
        if k.startswith("text_encoder."):
            k = "text_encoder.bert." + k[len("text_encoder."):]
        out[k] = v.to(torch.bfloat16) if v.is_floating_point() else v
    return out


@pytest.fixture(scope="module")
def released_tiny(tmp_path_factory):
    """A tiny VideoMamba-BERT (depth 6, 2 frames of 4×4 patches) loaded strictly from a release-layout .pth."""
    torch.manual_seed(0)
    arch = dict(depth=6, embed_dim=16)
    src = vtr.create_model("vtr_test", **arch)
    path = tmp_path_factory.mktemp("release") / "tiny_release.pth"
    torch.save(_released_layout(src), path)
    model = vtr.create_model("vtr_test", pretrained=str(path), **arch)
    assert model.load_report.renamed  # it really went through the release-layout path
    return model


def test_bf16_embeddings_match_fp32(released_tiny):
    torch.manual_seed(1)
    frames = torch.randn(6, 4, 3, 32, 32)
    with torch.inference_mode():
        ref = released_tiny.encode_video(frames).embedding.float()
        with autocast("bf16", "cpu"):
            low = released_tiny.encode_video(frames).embedding.float()
    assert low.shape == ref.shape
    assert not torch.equal(low, ref)  # bf16 really ran
    cos = torch.nn.functional.cosine_similarity(low, ref, dim=-1)
    assert cos.min().item() >= 0.999, cos
