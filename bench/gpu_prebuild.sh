#!/usr/bin/env bash
# Build mamba-ssm and causal-conv1d wheels HERE, without a GPU, for the lent GPU machine (bench/gpu.sh): its torch
# (2.11.0+cu130), Python (3.12) and GPU (sm_90) by default. Needs nvcc of the same CUDA major (13) on this machine,
# a Python of that version (pyenv's here) and the network once (the torch wheel, 530 MB, and the bundle).
#
#     bash bench/gpu_prebuild.sh            # .whl/ (bundle) and .whl-cuda/ (the two wheels + prebuilt.json)
#
# About 13 minutes on 2 cores. That torch cannot be imported here as it is: it links CUDA libraries this machine
# lacks (cuDNN, cuBLAS, NCCL, ...). setup.py only needs it to import, not to run a kernel, so those libraries are
# stood in for by empty ones of the same names, loaded lazily (RTLD_LAZY): no function of theirs is ever called.
set -eu
cd "$(dirname "$0")/.."
TORCH=${TORCH:-2.11.0} PYVER=${PYVER:-3.12} ARCH=${ARCH:-90}
# the first of these that runs and is Python $PYVER (a pyenv shim can exist and fail)
for c in ${PYTHON:-} "python$PYVER" "$HOME"/.pyenv/versions/"$PYVER".*/bin/python; do
    if "$c" -c "import sys; sys.exit(f'{sys.version_info[0]}.{sys.version_info[1]}' != '$PYVER')" 2>/dev/null; then
        PYTHON=$c; break
    fi
done
# the CUDA toolkit: the first of these with cuda_runtime.h (/usr/local/bin/nvcc can be a wrapper script)
for c in ${CUDA_HOME:-} "$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")" /usr/local/cuda \
         /usr/local/cuda-[0-9]*; do
    [ -f "$c/include/cuda_runtime.h" ] && { CUDA_HOME=$c; break; }
done
[ -n "${CUDA_HOME:-}" ] || { echo "no CUDA toolkit with include/cuda_runtime.h found: set CUDA_HOME" >&2; exit 2; }
ENV=${PREBUILD_ENV:-/tmp/vtr-prebuild-py$PYVER}
[ -n "${PYTHON:-}" ] || { echo "no Python $PYVER found: set PYTHON" >&2; exit 2; }
if [ ! -x "$ENV/bin/python" ]; then
    "$PYTHON" -m venv "$ENV"
    PIP_CONSTRAINT= "$ENV/bin/python" -m pip install -q --no-deps "torch==$TORCH" typing_extensions sympy mpmath \
        filelock jinja2 markupsafe networkx fsspec setuptools wheel packaging ninja numpy einops
fi
STUBS="$ENV/cuda-stubs"
mkdir -p "$STUBS"
missing=$(LD_LIBRARY_PATH="$CUDA_HOME/lib64" ldd "$ENV"/lib/python*/site-packages/torch/lib/libtorch_cuda.so |
          awk '/not found/ {print $1}')
for lib in $missing; do
    echo "" | gcc -shared -x c -o "$STUBS/$lib" -Wl,-soname,"$lib" -
done
echo 'import os, sys; sys.setdlopenflags(os.RTLD_LAZY | os.RTLD_GLOBAL)' \
    > "$(echo "$ENV"/lib/python*/site-packages)/sitecustomize.py"
# the sources come with the bundle; once built, they leave it (bench/gpu.sh would build them again there)
compgen -G ".whl/mamba_ssm-*.tar.gz" > /dev/null || python3 -m bench.gpu_build bundle
mkdir -p .whl-cuda
cp .whl/causal_conv1d-*.tar.gz .whl/mamba_ssm-*.tar.gz .whl-cuda/
CUDA_HOME="$CUDA_HOME" LD_LIBRARY_PATH="$STUBS:$CUDA_HOME/lib64" PYTHONPATH="$PWD" \
    "$ENV/bin/python" -m bench.gpu_build prebuild --dir .whl-cuda --arch "$ARCH"
rm -f .whl-cuda/*.tar.gz .whl/causal_conv1d-*.tar.gz .whl/mamba_ssm-*.tar.gz
ls -la .whl .whl-cuda
