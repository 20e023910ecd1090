"""Keep the memory a prediction frees inside the process, so the next image or tile batch does not fault it in again.

Predicting a folder allocates and frees the same large arrays over and over: tile batches and their activations, the
blended probabilities (``(K, *S)`` float32: 50 MB for a 2048 x 2048 image), and the instance step's labels, distance
maps and masks. glibc's malloc hands large allocations (above a threshold that starts at 128 kB and grows to 32 MB)
to ``mmap`` and gives freed memory at the top of its heap back to the kernel beyond 128 kB, so each next allocation
is a fresh mapping whose pages the kernel faults in and zero-fills one by one. That costs little on bare metal and a
great deal in a VM whose freed pages go back to the host (free page reporting): there a fresh 32 MB array took
0.37 s to touch the first time and 0.004 s when reused (the 2-core CI VM).

``keep_freed_memory`` sets glibc's mmap threshold to its largest value (32 MB: arrays up to it come from the heap),
turns off trimming the heap's top, and then turns ``mmap`` off altogether (``M_MMAP_MAX`` 0: arrays above 32 MB come
from the heap too; where the heap cannot grow glibc still maps, so nothing fails for it), so freed memory is reused
instead of returned, whatever its size. The process's resident memory then stays near its peak until it exits, which
a command-line run (``cellseg predict``, ``cellseg evaluate --model``) does when its folder is done; the library's
functions leave malloc alone. Measured on the 2-core VM (2026-12-03, the DSB2018 8-128 model, 2048 x 2048 synthetic
field, 2,129 objects, four processes each way, alternated): the whole path with instances 4.21-4.97 s -> 3.52-4.17 s
per image (the instance step ~2.0 s -> ~1.2 s), probabilities alone within the noise, peak memory 744-758 MB ->
778-790 MB. Turning ``mmap`` off counts where a prediction allocates more than 32 MB at once: the instance step's
watershed converts and pads a 2048 x 2048 image to float64 (two 33.5 MB arrays), and with those faulted in afresh for
every image the whole path with instances took 2.12-2.94 s per field against 1.69-1.88 s with them reused (2026-12-03,
the Zen 4 VM, ``configs/dsb2018_unfolded.yaml``'s model, five rounds in one process each way,
``benchmarks/model_speed.py``; probabilities alone 1.35 against 1.27 s). Setting only the trim threshold is worse
than nothing (it freezes the mmap threshold at 128 kB: 2-3x slower), so the mmap threshold is set first and trimming
only if that worked.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
LARGEST_MMAP_THRESHOLD = 32 * 2**20  # glibc's ceiling on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX); mallopt refuses more
NEVER_TRIM = 2**31 - 1  # bytes of free memory at the heap's top before it is trimmed: the largest C int

_state = {"kept": False}


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse instead of handing it back to the kernel (once per process).

    Returns:
        Whether the threshold and trimming settings are in force (``mmap`` is then off as well): ``False`` where
        the C library is not glibc (macOS, Windows, musl: nothing changed) or refused one (if it refused only
        trimming, the mmap threshold stays at 32 MB, harmless).
    """
    if _state["kept"]:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process already runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if mallopt(M_MMAP_THRESHOLD, LARGEST_MMAP_THRESHOLD) != 1:  # first: trimming alone would be the slow case
        return False
    kept: bool = mallopt(M_TRIM_THRESHOLD, NEVER_TRIM) == 1
    if kept:  # heap memory is kept: larger arrays from the heap too (glibc still maps where the heap cannot grow)
        mallopt(M_MMAP_MAX, 0)
    _state["kept"] = kept
    return kept
