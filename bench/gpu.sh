#!/usr/bin/env bash
# Prepared GPU check (issue 14, item 6). Run from the repository root on a machine with one CUDA GPU:
#
#     bash bench/gpu.sh            # about 10 minutes once the CUDA extras are built
#     SKIP_INSTALL=1 bash bench/gpu.sh
#
# 1. installs the CUDA extras (mamba-ssm, causal-conv1d, faiss-gpu: `pip install -e .[cuda]`; mamba-ssm and
#    causal-conv1d compile against the installed torch when no wheel matches, which takes minutes);
# 2. runs the `gpu`-marked tests (CUDA scan, mixer and FAISS parity with the CPU paths);
# 3. runs the encoder bench (VideoMamba-M 8x224², fp32 and bf16, batch 1 and 8) and the index throughput bench on
#    CUDA;
# 4. prints one table and leaves the JSON under bench/results/gpu/.
#
# Every step runs even when an earlier one failed; the table says which failed. Nothing here has been run yet:
# no GPU machine was available when it was written (see bench/README.md).
set -u
cd "$(dirname "$0")/.."
OUT=bench/results/gpu
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
: > "$LOG"
status() { printf '%-34s %s\n' "$1" "$2" >> "$OUT/status.txt"; }
: > "$OUT/status.txt"

if ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "no CUDA device visible to torch: nothing to check" | tee -a "$LOG"
    exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$LOG"

if [ -z "${SKIP_INSTALL:-}" ]; then
    # faiss-cpu and faiss-gpu install the same module: drop the CPU one first (pyproject.toml's note)
    pip uninstall -y faiss-cpu >> "$LOG" 2>&1
    if timeout 1800 pip install --no-build-isolation -e ".[cuda]" >> "$LOG" 2>&1; then
        status "install .[cuda]" ok
    else
        status "install .[cuda]" "FAILED (see $LOG)"
    fi
fi
python - <<'EOF' | tee -a "$LOG"
from vtr.ops.selective_scan import available_backends
print("scan backends:", available_backends())
EOF

if timeout 900 python -m pytest -q -m gpu tests/ > "$OUT/pytest_gpu.txt" 2>&1; then
    status "pytest -m gpu" "ok: $(tail -1 "$OUT/pytest_gpu.txt")"
else
    status "pytest -m gpu" "FAILED: $(tail -1 "$OUT/pytest_gpu.txt")"
fi

if timeout 900 python -m bench.encoder --device cuda --sections encoder --models middle --frames 8,16 \
        --dtypes fp32,bf16 --batch 1,8 --repeats 5 --out "$OUT/encoder.json" > "$OUT/encoder.txt" 2>&1; then
    status "bench.encoder (cuda)" ok
else
    status "bench.encoder (cuda)" "FAILED: $(tail -1 "$OUT/encoder.txt")"
fi

if timeout 900 python -m bench.index_throughput --device cuda --resolutions 720p,1080p --seconds 60 \
        --batch-size 16 --workers 4 --out "$OUT/index_throughput.json" > "$OUT/index_throughput.txt" 2>&1; then
    status "bench.index_throughput (cuda)" ok
else
    status "bench.index_throughput (cuda)" "FAILED: $(tail -1 "$OUT/index_throughput.txt")"
fi

python - "$OUT" <<'EOF'
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
