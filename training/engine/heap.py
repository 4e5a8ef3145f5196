"""CPU training reuses freed memory instead of fresh pages from the system (FinetuneConfig.reuse_memory).

A CPU training step allocates and frees the same large tensors over and over (tokens × hidden,
tokens × intermediate: 16 MB each at 8 x 512 tokens on the bench's model). glibc's malloc serves blocks
above its mmap threshold (128 KiB, raised on the fly up to 32 MiB) with pages of their own and hands
them back on free, and gives back the top of its heap beyond the trim threshold: every such tensor is
then new pages, which the kernel zeroes and which fault on first write. Profiled at 8 x 512 tokens, an
elementwise multiply of two (4096 × 1024) tensors took ~13 ms in a step against ~1 ms in a loop.

During a CPU run, blocks up to 32 MiB (glibc's ceiling) come from the heap and freed memory stays there
(M_MMAP_THRESHOLD 32 MiB, M_TRIM_THRESHOLD 1 GiB), so a step writes into pages the last one used. When
the run ends malloc_trim gives the free memory back. The settings stay for the rest of the process (a
training worker's), which is what it is for. Nothing happens where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import platform
from contextlib import contextmanager

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest on 64-bit
TRIM_THRESHOLD = 1024 * 1024 * 1024


def _glibc():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


@contextmanager
def reused(on: bool = True):
    """Within: large blocks come from (and go back to) the heap; after: its free memory is given back.
    Yields whether the settings took effect."""
    libc = _glibc() if on else None
    took = bool(libc) and libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    took = took and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    try:
        yield took
    finally:
        if libc:
            libc.malloc_trim(0)
