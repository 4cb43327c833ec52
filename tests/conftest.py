import os

import vtr  # noqa: F401  (before torch: sets OpenMP's wait policy, as every vtr entry point does)
import pytest
import torch

# Tests never touch the network: make any accidental hub access fail fast instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# vtr's own cache (the CPU's bf16 probe, vtr.precision) goes to a folder of this session, not the user's home.
if "VTR_CACHE" not in os.environ:
    import tempfile

    os.environ["VTR_CACHE"] = tempfile.mkdtemp(prefix="vtr-test-cache-")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def mamba_ssm_scan_calls(monkeypatch):
    """Shapes of ``u`` for every call into mamba_ssm's CUDA selective scan during the test.

    Skips, saying so, when mamba_ssm does not import: a GPU test must not pass on the PyTorch fallback while
    claiming to check the CUDA kernel.
    """
    from vtr.ops import selective_scan as ss

    kernel = ss._load_mamba_ssm()
    if kernel is None:
        pytest.skip("mamba_ssm is not installed (or its CUDA extension fails to load): the CUDA scan kernel "
                    "cannot be checked here")
    calls = []

    def spy(u, *args, **kwargs):
        calls.append(tuple(u.shape))
        return kernel(u, *args, **kwargs)

    monkeypatch.setattr(ss, "_load_mamba_ssm", lambda: spy)
    return calls
