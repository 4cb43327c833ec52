"""vtr.models.hub: one lookup (placed by hand, hub cache, download) and one offline message for every hub file."""

import os

import pytest
import torch

import vtr
from vtr.errors import WeightsNotFoundError
from vtr.models import registry
from vtr.models.hub import hub_file
from vtr.models.hf_bert import load_tokenizer


@pytest.fixture
def offline_empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("VTR_WEIGHTS", str(tmp_path / "weights"))
    return tmp_path


def fake_cache(root, repo_id, files: dict):
    """The hub cache layout (refs/main -> snapshots/<commit>/<file>) under ``root``/hf/hub."""
    commit = "0" * 40
    repo = root / "hf" / "hub" / f"models--{repo_id.replace('/', '--')}"
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for name, write in files.items():
        write(repo / "snapshots" / commit / name)
    return repo / "snapshots" / commit


def test_one_offline_message_for_release_weights_and_text_files(offline_empty_cache):
    cache = str(offline_empty_cache / "hf" / "hub")
    with pytest.raises(WeightsNotFoundError) as weights:
        vtr.create_model("videomamba_m16_5M", pretrained=True)
    with pytest.raises(WeightsNotFoundError) as tokenizer:
        load_tokenizer("bert-base-uncased")
    for err, repo, filename in ((weights, "OpenGVLab/VideoMamba", "videomamba_m16_5M_f8_res224.pth"),
                                (tokenizer, "bert-base-uncased", "vocab.txt")):
        message = str(err.value)
        assert f"in the Hugging Face cache {cache}, and HF_HUB_OFFLINE is set" in message
        assert f"`hf download {repo} {filename}`" in message and f"copy its cache folder to {cache}" in message
    # the release weights can also be placed by hand, or passed as a path
    assert str(offline_empty_cache / "weights" / "videomamba_m16_5M_f8_res224.pth") in str(weights.value)
    assert "pretrained='/path/videomamba_m16_5M_f8_res224.pth'" in str(weights.value)
    assert "pass that folder's path instead of 'bert-base-uncased'" in str(tokenizer.value)


def test_release_weights_come_from_the_hub_cache_offline(offline_empty_cache, monkeypatch):
    model = vtr.create_model("vtr_test")
    entry = registry.WeightEntry("tiny_release", "vtr_test", "someone/tiny", "tiny.pth", model.preprocess)
    monkeypatch.setitem(registry.WEIGHTS, "tiny_release", entry)
    snapshot = fake_cache(offline_empty_cache, "someone/tiny",
                          {"tiny.pth": lambda p: torch.save(model.state_dict(), p)})
    loaded = vtr.create_model("tiny_release", pretrained=True)
    assert loaded.weights_source == str(snapshot / "tiny.pth")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())


def test_a_file_placed_by_hand_wins_over_the_cache(offline_empty_cache):
    snapshot = fake_cache(offline_empty_cache, "someone/tiny", {"a.bin": lambda p: p.write_bytes(b"cached")})
    assert hub_file("someone/tiny", ["a.bin"], "test file") == str(snapshot / "a.bin")
    placed = offline_empty_cache / "weights"
    placed.mkdir()
    (placed / "a.bin").write_bytes(b"placed")
    assert hub_file("someone/tiny", ["a.bin"], "test file", placed_dir=placed) == str(placed / "a.bin")
    assert os.path.exists(snapshot / "a.bin")


@pytest.fixture
def online_empty_cache(offline_empty_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    return offline_empty_cache


def test_no_network_is_said_at_once_instead_of_after_the_hubs_retries(online_empty_cache, monkeypatch):
    """Not cached and the hub unreachable: the cache is all there is. huggingface_hub retried each file five times
    (about 25 s of warnings) before the message."""
    import socket

    import huggingface_hub

    from vtr.models import hub

    probes, downloads = [], []
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: probes.append(a) or (_ for _ in ()).throw(
        OSError("Name or service not known")))
    real_download = huggingface_hub.hf_hub_download
    # records what was asked, and never goes to the network itself
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: downloads.append(k["local_files_only"])
                        or real_download(*a, **{**k, "local_files_only": True}))
    with pytest.raises(WeightsNotFoundError, match="and https://huggingface.co cannot be reached from this machine"):
        load_tokenizer("bert-base-uncased")
    assert probes and downloads == [True]  # one probe, then the cache alone

    # a cached file is served without a probe; behind a proxy the probe is the proxy's to answer
    snapshot = fake_cache(online_empty_cache, "someone/tiny", {"a.bin": lambda p: p.write_bytes(b"cached")})
    probes.clear()
    assert hub_file("someone/tiny", ["a.bin"], "test file") == str(snapshot / "a.bin") and not probes
    assert downloads[-1] is False  # the hub may still be asked for a newer version, as before
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    assert hub.hub_reachable() and not probes
