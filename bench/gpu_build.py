"""The CUDA extras for a GPU machine that cannot reach a package registry (the lent GPU machine of bench/README.md).

Two steps, on two machines::

    python -m bench.gpu_build bundle            # here, with network: wheels and sources into .whl/ (about 55 MB)
    python -m bench.gpu_build install           # there, inside bench/gpu.sh: installs .whl/ into --target

``bundle`` downloads what that machine lacks, for its Python (``--python-version``, default 3.12): the wheels of
PyAV, webdataset (and braceexpand) and faiss-cpu, at the versions installed here when there are any, and the source
archives of mamba-ssm and causal-conv1d. faiss-gpu is not bundled: its PyPI wheels are built for CUDA 12 and need
CUDA 12's cuBLAS (hundreds of MB); a CUDA 13 machine runs the CPU index and ``pytest -m gpu`` says faiss has no GPU.

``install`` installs the wheels, then builds both sources against the machine's torch. Their ``setup.py`` compiles
for every architecture its CUDA knows (nine with CUDA 13), which takes far longer than the machine is lent for;
:func:`patch_gencodes` keeps the GPU's own (``--arch``, default: the visible GPU's compute capability). The build
runs with ``*_FORCE_BUILD=TRUE`` so that ``setup.py`` does not first try to download a prebuilt wheel.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from importlib import metadata
from pathlib import Path

BUNDLE = Path(".whl")
#: wheels the GPU machine lacks (its image has torch, numba, transformers, pytest, ... : bench/README.md)
WHEELS = ("av", "webdataset", "braceexpand", "faiss-cpu")
#: sources built there, in this order (mamba-ssm uses causal-conv1d when it imports)
SOURCES = ("causal-conv1d", "mamba-ssm")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")

_GENCODE = re.compile(r'(?P<indent>[ \t]*)cc_flag\.append\("-gencode"\)[ \t]*\n[ \t]*'
                      r'cc_flag\.append\("arch=compute_(?P<cc>\d+a?),code=sm_(?P=cc)"\)')


def patch_gencodes(setup_py: str, arch: str) -> str:
    """``setup.py`` (mamba-ssm's or causal-conv1d's) compiling for ``arch`` alone (e.g. "90"): every other
    ``cc_flag.append("-gencode"); cc_flag.append("arch=compute_NN,code=sm_NN")`` pair becomes ``pass``. Raises
    ValueError when the file has no such pair for ``arch`` (another layout: building it unpatched would take hours)."""
    kept = []

    def keep(m):
        if m.group("cc") == arch and not kept:
            kept.append(arch)
            return m.group(0)
        return m.group("indent") + "pass"

    out = _GENCODE.sub(keep, setup_py)
    if not kept:
        found = sorted({m.group("cc") for m in _GENCODE.finditer(setup_py)})
        raise ValueError(f"setup.py has no -gencode pair for sm_{arch} (pairs found: {found or 'none'}); "
                         "not building it for every architecture")
    return out


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _sdist_url(name: str) -> tuple[str, str]:
    """(file name, url) of the newest source archive of ``name`` on PyPI."""
    with urllib.request.urlopen(f"https://pypi.org/pypi/{name}/json", timeout=60) as r:
        info = json.load(r)
    for f in info["urls"]:
        if f["packagetype"] == "sdist":
            return f["filename"], f["url"]
    raise SystemExit(f"{name} {info['info']['version']} has no source archive on PyPI")


def bundle(out: Path, python_version: str) -> None:
    out.mkdir(exist_ok=True)
    for old in out.iterdir():
        old.unlink()
    specs = [f"{n}=={v}" if (v := _installed(n)) else n for n in WHEELS]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version",
           python_version, "--implementation", "cp", "-d", str(out)]
    for p in PLATFORMS:
        cmd += ["--platform", p]
    subprocess.run(cmd + specs, check=True)
    for name in SOURCES:
        filename, url = _sdist_url(name)
        print(f"downloading {filename}")
        with urllib.request.urlopen(url, timeout=120) as r, open(out / filename, "wb") as f:
            shutil.copyfileobj(r, f)
    total = sum(f.stat().st_size for f in out.iterdir())
    print(f"{out}: {len(list(out.iterdir()))} files, {total / 2 ** 20:.1f} MiB")


def _visible_arch() -> str:
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device visible: pass --arch (e.g. 90 for an H100 or H200)")
    major, minor = torch.cuda.get_device_capability()
    return f"{major}{minor}"


def install(src: Path, target: Path, arch: str | None, jobs: int) -> int:
    """Install ``src``'s wheels and build its sources into ``target``; returns the number of failures."""
    target.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
           "--upgrade", "--target", str(target)]
    failures = 0
    wheels = sorted(src.glob("*.whl"))
    if wheels:
        failures += subprocess.run(pip + [str(w) for w in wheels]).returncode != 0
    arch = arch or _visible_arch()
    env = dict(os.environ, MAMBA_FORCE_BUILD="TRUE", CAUSAL_CONV1D_FORCE_BUILD="TRUE", MAX_JOBS=str(jobs),
               TORCH_CUDA_ARCH_LIST=f"{arch[:-1]}.{arch[-1]}",
               PYTHONPATH=os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")])))
    for name in SOURCES:
        archives = sorted(src.glob(name.replace("-", "_") + "-*.tar.gz"))
        if not archives:
            print(f"{name}: no source archive in {src}")
            failures += 1
            continue
        with tempfile.TemporaryDirectory(prefix=f"build-{name}-") as tmp:
            with tarfile.open(archives[-1]) as tar:
                tar.extractall(tmp, filter="data")
            (root,) = [p for p in Path(tmp).iterdir() if p.is_dir()]
            setup = root / "setup.py"
            try:
                setup.write_text(patch_gencodes(setup.read_text(), arch))
            except ValueError as e:
                print(f"{name}: {e}")
                failures += 1
                continue
            print(f"building {archives[-1].name} for sm_{arch} with {jobs} jobs", flush=True)
            r = subprocess.run(pip + ["--no-build-isolation", str(root)], env=env)
            failures += r.returncode != 0
    return failures


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bundle", help="download the wheels and sources into --dir (needs network)")
    b.add_argument("--dir", type=Path, default=BUNDLE)
    b.add_argument("--python-version", default="3.12", help="the GPU machine's Python")
    i = sub.add_parser("install", help="install --dir's wheels and build its sources into --target")
    i.add_argument("--dir", type=Path, default=BUNDLE)
    i.add_argument("--target", type=Path, required=True, help="a folder to put on PYTHONPATH afterwards")
    i.add_argument("--arch", default=None, help="compute capability without the dot, e.g. 90 (default: the GPU's)")
    i.add_argument("--jobs", type=int, default=0, help="parallel compiler jobs (default: every core)")
    a = p.parse_args(argv)
    if a.cmd == "bundle":
        bundle(a.dir, a.python_version)
    else:
        sys.exit(1 if install(a.dir, a.target, a.arch, a.jobs or os.cpu_count() or 1) else 0)


if __name__ == "__main__":
    main()
