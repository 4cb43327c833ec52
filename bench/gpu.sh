#!/usr/bin/env bash
# Prepared GPU check (issue 14, item 6). Run from the repository root on a machine with one CUDA GPU:
#
#     bash bench/gpu.sh                      # with network: pip install -e .[cuda] first
#     python -m bench.gpu_build bundle       # or, on a machine with network, for a GPU machine without:
#     bash bench/gpu.sh                      #   there, .whl/ is installed and mamba-ssm built for its GPU alone
#     SKIP_INSTALL=1 bash bench/gpu.sh       # the CUDA extras are already installed
#
# The lent GPU machine (no registry, 10 minutes a command, 15 in all, bench/README.md). Building mamba-ssm and
# causal-conv1d there took more than 330 s of its time (causal-conv1d did not finish), so build their wheels here
# first, without a GPU (about 13 minutes on 2 cores):
#
#     bash bench/gpu_prebuild.sh        # .whl/ (bench.gpu_build bundle) and .whl-cuda/ (the two CUDA wheels)
#
# Together they are over the 64 MiB a call carries: two commands back to back, the second within the machine's
# 30 s warm window (which keeps .gpu-site/), each carrying its folder. SNAPSHOT is a tarball of the results,
# rewritten after every step, so that a command stopped at its limit still returns what it finished:
#
#     BUNDLES=.whl-cuda STEPS=install,tests,encoder PYTEST_K="not torchrun" QUICK=1 BUDGET_S=200 \
#         GPU_RESULTS=/tmp/gpu1 SNAPSHOT=$OUT/gpu1.tgz bash bench/gpu.sh                   # carrying .whl-cuda
#     BUNDLES=.whl KEEP_SITE=1 STEPS=install,tests,index,rerank PYTEST_K=torchrun QUICK=1 BUDGET_S=300 \
#         GPU_RESULTS=/tmp/gpu2 SNAPSHOT=$OUT/gpu2.tgz bash bench/gpu.sh                   # carrying .whl
#
# STEPS: any of install, tests, encoder, index, rerank (default: all five). BUDGET_S: seconds for the whole script;
# each step's timeout is cut to what is left of it (less RESERVE_S=15 for the table), and a step with under 20 s
# left is skipped and marked so.
#
# 1. installs the CUDA extras: from the network (`pip install -e .[cuda]`), or, when .whl/ holds a bundle
#    (bench/gpu_build.py), its wheels, and mamba-ssm / causal-conv1d prebuilt for this machine's torch, Python and
#    GPU, else built from source for this GPU's architecture alone (their setup.py builds nine with CUDA 13);
# 2. checks what imports (mamba_ssm's kernel, causal_conv1d, faiss with GPUs) and runs the `gpu`-marked tests
#    (CUDA scan, mixer, whole model, pretraining under torchrun and FAISS against the CPU paths);
# 3. runs the encoder bench (VideoMamba-M 8x224², fp32 and bf16, batch 1 and 8), the index throughput bench and
#    the re-ranking bench (windows per encoder call) on CUDA;
# 4. prints one table and leaves logs and JSON in $GPU_RESULTS (default bench/results/gpu).
#
# Every step runs even when an earlier one failed; the table says which failed. Runs so far: bench/README.md
# (seventeenth round).
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
RES=${GPU_RESULTS:-bench/results/gpu}
mkdir -p "$RES"
LOG="$RES/gpu_check.log"
: > "$LOG"
: > "$RES/status.txt"
status() { printf '%-34s %s\n' "$1" "$2" >> "$RES/status.txt"; }
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
STEPS=",${STEPS:-install,tests,encoder,index,rerank},"
START=$SECONDS
# limit NAME SECONDS: the timeout for a step (its own, or what is left of BUDGET_S); fails when under 20 s are left
limit() {
    local t=$2
    if [ -n "${BUDGET_S:-}" ]; then
        local left=$((BUDGET_S - (SECONDS - START) - ${RESERVE_S:-15}))
        [ "$left" -lt "$t" ] && t=$left
    fi
    if [ "$t" -lt 20 ]; then status "$1" "SKIPPED: out of BUDGET_S"; return 1; fi
    echo "$t"
}
step() { [[ "$STEPS" == *",$1,"* ]]; }
# snap: the results so far into $SNAPSHOT (written aside, then renamed: a stopped command leaves the last whole one)
snap() {
    [ -n "${SNAPSHOT:-}" ] || return 0
    tar czf "$SNAPSHOT.part" -C "$(dirname "$RES")" "$(basename "$RES")" && mv "$SNAPSHOT.part" "$SNAPSHOT"
}
SITE="$PWD/.gpu-site"  # where a bundle is installed (ignored by git, kept between commands on a warm machine)

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "no CUDA device visible to torch: nothing to check" | tee -a "$LOG"
    exit 2
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; nproc
  lscpu | grep -m1 "Model name"; } 2>&1 | tee -a "$LOG"

BUNDLES=${BUNDLES:-.whl}  # bundle folders (bench/gpu_build.py), installed in this order
have_bundle() { for b in $BUNDLES; do compgen -G "$b/*.whl" > /dev/null || compgen -G "$b/*.tar.gz" > /dev/null &&
    return 0; done; return 1; }
if step install && [ -z "${SKIP_INSTALL:-}" ]; then
    if have_bundle; then
        [ -n "${KEEP_SITE:-}" ] || rm -rf "$SITE"  # KEEP_SITE=1: add to what an earlier command installed
        for b in $BUNDLES; do
            if T=$(limit "install $b" "${BUILD_TIMEOUT:-360}") &&
                    timeout -k 10 "$T" "$PY" -m bench.gpu_build install --dir "$b" --target "$SITE" >> "$LOG" 2>&1
            then
                status "install $b" "ok: $(grep -E "^(installed the prebuilt|[a-z-]+: (built|FAILED))" "$LOG" |
                    tail -2 | tr '\n' ' ')"
            else
                grep -q "install $b" "$RES/status.txt" || status "install $b" "FAILED (see $LOG)"
            fi
        done
    else
        # faiss-cpu and faiss-gpu install the same module: drop the CPU one first (pyproject.toml's note)
        "$PY" -m pip uninstall -y faiss-cpu >> "$LOG" 2>&1
        if timeout 1800 "$PY" -m pip install --no-build-isolation -e ".[cuda]" >> "$LOG" 2>&1; then
            status "install .[cuda]" ok
        else
            status "install .[cuda]" "FAILED (see $LOG)"
        fi
    fi
fi
snap
[ -d "$SITE" ] && export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH="${PYTHONPATH:-$PWD}"

for mod in "mamba_ssm.ops.selective_scan_interface" "causal_conv1d" "faiss"; do
    if out=$("$PY" -c "import $mod" 2>&1); then
        status "import $mod" ok
    else
        status "import $mod" "FAILED: $(echo "$out" | tail -1 | cut -c1-150)"
    fi
done
"$PY" - <<'EOF' 2>&1 | tee -a "$LOG"
from vtr.ops.selective_scan import available_backends
print("scan backends:", available_backends())
try:
    from index.store import gpu_available
    print("faiss GPUs:", gpu_available())
except Exception as e:  # faiss missing
    print("faiss:", e)
EOF

# the test files with gpu-marked tests only: collecting every file would import the app's and eval's packages
GPU_TESTS=$(grep -rl "pytest.mark.gpu" tests/ | sort | tr '\n' ' ')
if ! step tests; then :
elif ! T=$(limit "pytest -m gpu" 600); then :
elif timeout -k 10 "$T" "$PY" -m pytest -q -rs -m gpu ${PYTEST_K:+-k "$PYTEST_K"} $GPU_TESTS \
        > "$RES/pytest_gpu.txt" 2>&1; then
    status "pytest -m gpu" "ok: $(tail -1 "$RES/pytest_gpu.txt")"
else
    status "pytest -m gpu" "FAILED: $(tail -1 "$RES/pytest_gpu.txt")"
fi
snap

if [ -n "${QUICK:-}" ]; then FRAMES=8; IDX="--quick"; else FRAMES=8,16; IDX="--resolutions 720p,1080p --seconds 60"; fi
if ! step encoder; then :
elif ! T=$(limit "bench.encoder (cuda)" 600); then :
elif timeout -k 10 "$T" "$PY" -m bench.encoder --device cuda --sections encoder --models middle --frames $FRAMES \
        --dtypes fp32,bf16 --batch 1,8 --repeats 5 --out "$RES/encoder.json" > "$RES/encoder.txt" 2>&1; then
    # the bench runs each row in a subprocess and records a failed one instead of stopping
    failed=$(grep -c "^\[encoder\].*: rc=" "$RES/encoder.txt")
    if [ "$failed" -eq 0 ]; then status "bench.encoder (cuda)" ok
    else status "bench.encoder (cuda)" "FAILED: $failed rows ($(grep -m1 "^\[encoder\].*: rc=" "$RES/encoder.txt" |
        rev | cut -d'|' -f1 | rev | cut -c1-100))"; fi
else
    status "bench.encoder (cuda)" "FAILED: $(tail -1 "$RES/encoder.txt")"
fi
snap

if ! step index; then :
elif ! T=$(limit "bench.index_throughput (cuda)" 900); then :
elif timeout -k 10 "$T" "$PY" -m bench.index_throughput --device cuda $IDX --batch-size 16 --workers auto \
        --thread-variants 2x1 --out "$RES/index_throughput.json" > "$RES/index_throughput.txt" 2>&1; then
    status "bench.index_throughput (cuda)" ok
else
    status "bench.index_throughput (cuda)" "FAILED: $(tail -1 "$RES/index_throughput.txt")"
fi
snap

if [ -n "${QUICK:-}" ]; then RR="--seconds 40 --windows 8"; else RR="--seconds 60 --windows 16"; fi
if ! step rerank; then :
elif ! T=$(limit "bench.rerank (cuda)" 600); then :
elif timeout -k 10 "$T" "$PY" -m bench.rerank --device cuda $RR --batches 1 4 8 --repeats 3 \
        --out "$RES/rerank.json" > "$RES/rerank.txt" 2>&1; then
    status "bench.rerank (cuda)" ok
else
    status "bench.rerank (cuda)" "FAILED: $(tail -1 "$RES/rerank.txt")"
fi
snap

"$PY" - "$RES" <<'EOF' 2>&1 | tee "$RES/table.txt"
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
print("\n== GPU check ==")
print((out / "status.txt").read_text().rstrip())
rows = []
enc = out / "encoder.json"
if enc.is_file():
    for r in json.loads(enc.read_text()).get("encoder", []):
        if "error" not in r:
            rows.append((f"VideoMamba-M T={r['frames']} B={r.get('batch', 1)}", r["dtype"],
                         f"{1000 * r['s_per_clip']:.1f} ms/clip", f"{r.get('cuda_peak_mib', 0):.0f} MiB"))
idx = out / "index_throughput.json"
if idx.is_file():
    for r in json.loads(idx.read_text()).get("rows", []):
        rows.append((f"{r['system']} {r['resolution']}", r["precision"], f"{r['min_per_hour']:.2f} min/h",
                     (f"{100 * r['build_vs_encoder']:.0f}% of encoder, {r.get('peak_workers')} decode workers"
                      if "build_vs_encoder" in r else "")))
rr = out / "rerank.json"
if rr.is_file():
    for r in json.loads(rr.read_text()).get("rows", []):
        rows.append((f"re-rank, {r['batch']} windows a call", "fp32", f"{1000 * r['s_per_window']:.0f} ms/window",
                     f"{r['speedup']:.2f}x the first"))
print(f"\n{'what':40s} {'prec':5s} {'result':>16s}  note")
for what, prec, result, note in rows:
    print(f"{what:40s} {prec:5s} {result:>16s}  {note}")
EOF
snap
