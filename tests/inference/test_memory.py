"""``keep_freed_memory``: freed arrays are reused, not faulted in again (page faults counted in a fresh process)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

FAULTS_OF_REPEATED_ARRAYS = """
import resource, sys
import numpy as np
from cellseg.inference.memory import keep_freed_memory
if sys.argv[1] == "keep" and not keep_freed_memory():
    raise SystemExit("keep_freed_memory() refused")
def faults(megabytes):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    array = np.ones(megabytes * 2**20 // 8)  # every page written
    del array
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(*[faults(megabytes) for megabytes in (16, 16, 24, 24, 64, 64)])
"""

needs_glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="malloc tuning is glibc's (Linux); elsewhere keep_freed_memory changes nothing and says so",
)


def page_faults(mode: str) -> list[int]:
    """Minor page faults of six fresh arrays (16, 16, 24, 24, 64, 64 MB) in a new Python process."""
    completed = subprocess.run(
        [sys.executable, "-c", FAULTS_OF_REPEATED_ARRAYS, mode], capture_output=True, text=True, check=True
    )
    return [int(count) for count in completed.stdout.split()]


@needs_glibc
def test_a_freed_array_is_reused_without_faulting_its_pages_in_again() -> None:
    plain, kept = page_faults("plain"), page_faults("keep")
    # glibc's defaults give the second 16 MB and the second 24 MB array fresh pages (hundreds of faults, huge pages
    # or not); kept, the second of each size reuses the first's memory.
    assert plain[1] > plain[0] / 2
    assert plain[3] > plain[2] / 2
    assert kept[1] < kept[0] / 10
    assert kept[3] < kept[2] / 10
    # above glibc's largest mmap threshold (32 MB) too: mmap is off, so the 64 MB array comes from the heap, kept
    assert plain[5] > plain[4] / 2
    assert kept[5] < kept[4] / 10


@needs_glibc
def test_keeping_freed_memory_is_applied_once_and_reported() -> None:
    # in a fresh process: the test run's own malloc stays as it is
    script = "from cellseg.inference.memory import keep_freed_memory as keep; print(keep(), keep())"
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert completed.stdout.split() == ["True", "True"]
