"""--device: a name torch does not know, or a device this machine lacks, is a one-line error before anything loads."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vtr.device import resolve_device
from vtr.errors import VtrError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_auto_and_cpu_are_the_cpu_without_a_gpu(no_gpu):
    for device in (None, "auto", "", " AUTO ", "cpu", "CPU", torch.device("cpu")):
        assert resolve_device(device) == torch.device("cpu")


def test_auto_takes_the_gpu_when_there_is_one(two_gpus):
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device(torch.device("cuda", 0)) == torch.device("cuda", 0)


def test_a_name_torch_does_not_know_is_refused_with_the_names_it_takes():
    for device in ("gpu", "cuda:x", "nvidia"):
        with pytest.raises(VtrError, match=f"unknown device '{device}': use auto .*, cpu, cuda or cuda:N"):
            resolve_device(device)


def test_cuda_on_a_machine_without_it_says_why_and_what_to_use(no_gpu, monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(VtrError, match=r"device 'cuda': this torch \(.*\) is built without CUDA\. Use --device cpu"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    with pytest.raises(VtrError, match="device 'cuda:0': no CUDA GPU is visible"):
        resolve_device("cuda:0")


def test_a_gpu_past_the_last_is_refused(two_gpus):
    with pytest.raises(VtrError, match=r"device 'cuda:2': this machine has 2 CUDA GPUs \(cuda:0 to cuda:1\)"):
        resolve_device("cuda:2")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
@pytest.mark.parametrize("argv", [["index", "build", "{folder}", "--index", "{folder}/idx", "--model", "vtr_test",
                                   "--device", "cuda"],
                                  ["search", "a dog", "--index", "{folder}/idx", "--device", "gpu"],
                                  ["eval", "--dataset", "msrvtt", "--annotations", "{folder}/a.json", "--videos",
                                   "{folder}", "--model", "vtr_test", "--device", "cuda"]])
def test_the_commands_say_it_in_one_line(tmp_path, argv):
    """The commands stop on it before loading a model: one line on stderr, no traceback (index build with
    ``--device cuda`` on a CPU-only torch was torch's AssertionError from inside ``model.to``)."""
    args = [a.format(folder=tmp_path) for a in argv]
    done = subprocess.run([sys.executable, "-m", "vtr.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    assert "error: " in done.stderr and "device '" in done.stderr, done.stderr
