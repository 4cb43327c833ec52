#!/usr/bin/env bash
# Prepared GPU check (issue 14, item 6). Run from the repository root on a machine with one CUDA GPU:
#
#     bash bench/gpu.sh                      # with network: pip install -e .[cuda] first
#     python -m bench.gpu_build bundle       # or, on a machine with network, for a GPU machine without:
#     bash bench/gpu.sh                      #   there, .whl/ is installed and mamba-ssm built for its GPU alone
#     SKIP_INSTALL=1 bash bench/gpu.sh       # the CUDA extras are already installed
#
# The lent GPU machine (no registry, 10 minutes a command, 15 in all, bench/README.md): bundle here, then two
# commands back to back (the second within the machine's 30 s warm window, so .gpu-site/ is still there), each
# carrying .whl:
#
#     STEPS=install,tests GPU_RESULTS=$OUT bash bench/gpu.sh           # build (at most BUILD_TIMEOUT=360 s), tests
#     STEPS=encoder,index QUICK=1 GPU_RESULTS=$OUT bash bench/gpu.sh   # the benches, 720p only
#
# STEPS: any of install, tests, encoder, index (default: all four).
#
# 1. installs the CUDA extras: from the network (`pip install -e .[cuda]`), or, when .whl/ holds a bundle
#    (bench/gpu_build.py), its wheels and mamba-ssm / causal-conv1d built from source for this GPU's architecture
#    alone (their setup.py builds nine with CUDA 13: far too long);
# 2. checks what imports (mamba_ssm's kernel, causal_conv1d, faiss with GPUs) and runs the `gpu`-marked tests
#    (CUDA scan, mixer, whole model and FAISS against the CPU paths);
# 3. runs the encoder bench (VideoMamba-M 8x224², fp32 and bf16, batch 1 and 8) and the index throughput bench
#    on CUDA;
# 4. prints one table and leaves logs and JSON in $GPU_RESULTS (default bench/results/gpu; at most 8 files).
#
# Every step runs even when an earlier one failed; the table says which failed. Not run on a GPU yet: no GPU
# machine was lent to a session that had it (bench/README.md).
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
STEPS=",${STEPS:-install,tests,encoder,index},"
step() { [[ "$STEPS" == *",$1,"* ]]; }
SITE="$PWD/.gpu-site"  # where a bundle is installed (ignored by git, kept between commands on a warm machine)

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "no CUDA device visible to torch: nothing to check" | tee -a "$LOG"
    exit 2
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; nproc; } 2>&1 | tee -a "$LOG"

if step install && [ -z "${SKIP_INSTALL:-}" ]; then
    if ls .whl/*.tar.gz > /dev/null 2>&1; then
        rm -rf "$SITE"
        if timeout "${BUILD_TIMEOUT:-360}" "$PY" -m bench.gpu_build install --target "$SITE" >> "$LOG" 2>&1; then
            status "install .whl/ (built here)" ok
        else
            status "install .whl/ (built here)" "FAILED (see $LOG)"
        fi
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
elif timeout 600 "$PY" -m pytest -q -m gpu $GPU_TESTS > "$RES/pytest_gpu.txt" 2>&1; then
    status "pytest -m gpu" "ok: $(tail -1 "$RES/pytest_gpu.txt")"
else
    status "pytest -m gpu" "FAILED: $(tail -1 "$RES/pytest_gpu.txt")"
fi

if [ -n "${QUICK:-}" ]; then FRAMES=8; IDX="--quick"; else FRAMES=8,16; IDX="--resolutions 720p,1080p --seconds 60"; fi
if ! step encoder; then :
elif timeout 600 "$PY" -m bench.encoder --device cuda --sections encoder --models middle --frames $FRAMES \
        --dtypes fp32,bf16 --batch 1,8 --repeats 5 --out "$RES/encoder.json" > "$RES/encoder.txt" 2>&1; then
    status "bench.encoder (cuda)" ok
else
    status "bench.encoder (cuda)" "FAILED: $(tail -1 "$RES/encoder.txt")"
fi

if ! step index; then :
elif timeout 900 "$PY" -m bench.index_throughput --device cuda $IDX --batch-size 16 --workers 4 \
        --out "$RES/index_throughput.json" > "$RES/index_throughput.txt" 2>&1; then
    status "bench.index_throughput (cuda)" ok
else
    status "bench.index_throughput (cuda)" "FAILED: $(tail -1 "$RES/index_throughput.txt")"
fi

"$PY" - "$RES" <<'EOF'
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
                     f"{100 * r['build_vs_encoder']:.0f}% of encoder" if "build_vs_encoder" in r else ""))
print(f"\n{'what':40s} {'prec':5s} {'result':>16s}  note")
for what, prec, result, note in rows:
    print(f"{what:40s} {prec:5s} {result:>16s}  {note}")
EOF
