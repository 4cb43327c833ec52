"""``import vtr`` has glibc's malloc keep freed memory (vtr._keep_freed_memory): a large tensor allocated again after
one was freed reuses its pages instead of faulting in fresh ones (VideoMamba-M: 70,000-330,000 page faults a forward
without, 0-600 with)."""

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="the setting is glibc's")

PROBE = """
import resource, sys
import vtr, torch
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(16):  # warm: glibc grows its heap over the first few before it reuses what was freed
    t = torch.empty(16 * 2**20); t.fill_(1.0); del t
before = faults()
for _ in range(4):  # 64 MiB each, written through, freed
    t = torch.empty(16 * 2**20); t.fill_(1.0); del t
print(vtr.MALLOC_TUNED, (faults() - before) // 4)
"""


def _probe(**env):
    out = subprocess.run([sys.executable, "-c", PROBE], env={**os.environ, **env}, capture_output=True, text=True,
                         check=True, timeout=120).stdout.split()
    return out[0] == "True", int(out[1])


def test_freed_memory_is_reused_without_page_faults():
    env = {k: v for k, v in os.environ.items() if not (k.startswith("MALLOC_") or k == "GLIBC_TUNABLES")}
    tuned, faults = _probe(**env, VTR_MALLOC_TUNE="1")
    assert tuned and faults < 1000  # the freed 64 MiB came back from the heap, already mapped
    untuned, faults_default = _probe(**env, VTR_MALLOC_TUNE="0")
    assert not untuned and faults_default > 10_000  # glibc's default: a fresh mmap, 16,384 pages faulted in


def test_a_users_own_malloc_tuning_is_left_alone():
    tuned, _ = _probe(GLIBC_TUNABLES="glibc.malloc.trim_threshold=1000000")
    assert not tuned
