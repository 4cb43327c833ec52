"""bench.gpu_build: the GPU machine builds mamba-ssm and causal-conv1d for its own architecture alone."""

import pytest

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
