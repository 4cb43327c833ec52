"""Where the inference scan kernel spends its time, instruction by instruction: ``perf`` samples mapped onto the
kernel's machine code.

numba's JIT code has no symbols ``perf report`` could use, so this compiles this checkout's kernels again (no
cache, so numba keeps their LLVM modules), finds the address of every function numba generated for
``scan_rows`` (the ``prange`` body is its own function), samples the process with ``perf record -e cpu-clock``
(a timer: it works where a VM exposes no hardware counters) while the kernel runs on one VideoMamba-M mixer
direction (``bench.scan_ab``'s inputs: batch ``--batch``, d_inner 1152, L 1569, bf16 gate, the backward direction
adding into the forward's output), and disassembles the hottest function with ``objdump``::

    python -m bench.scan_profile [--calls 200] [--top 25] [--context 40]

Prints the share of samples per function, the hottest instructions, and the code around the hottest one (a
sample usually lands on the instruction after the one that stalled). Writes ``bench/results/scan_profile.json``.
The thirteenth round in ``bench/README.md`` used it to find that LLVM's loop over the 16 lanes kept y in memory
across states and checked every array against every other at run time (``_recurrence`` replaced that loop), and
that row slices cost 7% in reference counting (``_ptr``).
"""

from __future__ import annotations

import argparse
import bisect
import collections
import ctypes
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from bench.scan_train import REPO, load_kernels

import torch  # noqa: E402  (after bench.scan_train, which puts the checkout on sys.path)


def functions(dispatcher) -> list[tuple[int, str]]:
    """(address, name) of every function defined in the dispatcher's compiled LLVM modules, sorted."""
    out = []
    for cres in dispatcher.overloads.values():
        lib = cres.library
        for f in lib._final_module.functions:
            if not f.is_declaration:
                addr = lib.get_pointer_to_function(f.name)
                if addr:
                    out.append((addr, f.name))
    return sorted(out)


def mapping_end(address: int) -> int:
    """The end of the memory mapping of this process that holds ``address`` (0 if none does)."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
        if lo <= address < hi:
            return hi
    return 0


def disassemble(address: int, size: int) -> dict[int, str]:
    """offset -> objdump's text of the instruction there, for ``size`` bytes of code at ``address``."""
    with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as f:
        f.write(ctypes.string_at(address, size))
    try:
        text = subprocess.run(["objdump", "-D", "-b", "binary", "-mi386:x86-64", f.name], capture_output=True,
                              text=True, check=True).stdout
    finally:
        os.unlink(f.name)
    out = {}
    for line in text.splitlines():
        head, sep, rest = line.partition(":\t")
        if sep and head.strip():
            try:
                off = int(head.strip(), 16)
            except ValueError:
                continue
            parts = rest.split("\t")
            if len(parts) > 1:  # a line of bytes alone continues the instruction above
                out[off] = parts[-1].strip()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="kernel calls while perf samples")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--frequency", type=int, default=4000, help="samples per second (perf -F)")
    parser.add_argument("--top", type=int, default=25, help="hottest instructions to list")
    parser.add_argument("--context", type=int, default=40, help="instructions shown before the hottest one")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "scan_profile.json"))
    args = parser.parse_args()
    for tool in ("perf", "objdump"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed here (linux-perf / binutils): nothing to profile with")

    import vtr.ops.selective_scan as ss
    from bench.scan_ab import mixer_inputs

    if ss._load_numba() is None:
        raise SystemExit("numba is not importable here: nothing to profile")
    # without the cache: a cached function has no LLVM module to find addresses in
    mod = load_kernels((REPO / "vtr" / "ops" / "_scan_numba.py").read_text(), "_scan_numba_profiled")
    ss._numba_state["module"] = mod
    u, delta, A, B, C, D, bias, xz = mixer_inputs(args.batch)
    d = u.shape[2]
    z = xz.to(torch.bfloat16)[..., d:]
    add = torch.randn(u.shape)

    def call():
        with torch.inference_mode():
            ss.selective_scan_rows(u, delta, A, B, C, D, z, bias, True, reverse=True, add=add, out_dtype=torch.bfloat16)

    call()  # compile
    funcs = functions(mod.scan_rows)
    data = Path(tempfile.mkdtemp(prefix="vtr_perf_")) / "perf.data"
    cmd = ["perf", "record", "-q", "-e", "cpu-clock", "-F", str(args.frequency), "-p", str(os.getpid()),
           "-o", str(data)]
    perf = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # perf attaches
    t0 = time.perf_counter()
    for _ in range(args.calls):
        call()
    wall = time.perf_counter() - t0
    perf.send_signal(signal.SIGINT)
    _, err = perf.communicate(timeout=120)
    if perf.returncode not in (0, -signal.SIGINT) or not data.exists():
        raise SystemExit(f"perf record failed (kernel.perf_event_paranoid?): {err.strip()[-500:]}")
    script = subprocess.run(["perf", "script", "-i", str(data), "-F", "ip"], capture_output=True, text=True,
                            check=True).stdout
    ips = [int(x, 16) for x in script.split()]

    starts = [a for a, _ in funcs]
    ends = [min(mapping_end(a), starts[i + 1] if i + 1 < len(starts) else mapping_end(a)) for i, a in enumerate(starts)]
    per_fn, per_ip = collections.Counter(), collections.Counter()
    for ip in ips:
        i = bisect.bisect_right(starts, ip) - 1
        if i >= 0 and ip < ends[i]:
            per_fn[funcs[i][1]] += 1
            per_ip[(funcs[i][1], ip - funcs[i][0])] += 1
        else:
            per_fn["(outside the kernel's code: numba runtime, torch, python)"] += 1
    total = max(sum(per_fn.values()), 1)
    print(f"scan_rows, one M mixer direction, batch {args.batch}, bf16 gate and output: {args.calls} calls, "
          f"{1e3 * wall / args.calls:.2f} ms a call under perf; {len(ips)} samples; load {os.getloadavg()[0]:.2f}")
    print("| function | samples | share |\n|---|---:|---:|")
    for name, n in per_fn.most_common(8):
        print(f"| {name[:90]} | {n} | {100 * n / total:.1f}% |")

    kernel = next((n for n, _ in per_fn.most_common() if n in dict((b, a) for a, b in funcs)), None)
    report = {"calls": args.calls, "batch": args.batch, "ms_per_call_under_perf": round(1e3 * wall / args.calls, 3),
              "samples": len(ips), "functions": dict(per_fn.most_common(8)), "hot": []}
    if kernel is not None:
        base = dict((b, a) for a, b in funcs)[kernel]
        offs = [o for (n, o) in per_ip if n == kernel]
        code = disassemble(base, max(offs) + 16)
        k_total = per_fn[kernel]
        print(f"\nhottest instructions of {kernel[:70]}… ({k_total} samples)")
        print("| offset | share of the function | instruction |\n|---|---:|---|")
        for (n, off), c in per_ip.most_common():
            if n != kernel:
                continue
            print(f"| {off:#x} | {100 * c / k_total:.1f}% | `{code.get(off, '?')}` |")
            report["hot"].append({"offset": off, "share": round(c / k_total, 4), "insn": code.get(off, "?")})
            if len(report["hot"]) >= args.top:
                break
        hottest = report["hot"][0]["offset"]
        ordered = sorted(code)
        i = ordered.index(hottest) if hottest in code else 0
        print(f"\nthe code before the hottest instruction ({args.context} instructions), samples on the left:")
        for off in ordered[max(0, i - args.context):i + 6]:
            c = per_ip.get((kernel, off), 0)
            print(f"{c:6d} {100 * c / k_total:5.1f}%  {off:#7x}  {code[off]}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
