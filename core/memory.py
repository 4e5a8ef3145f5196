"""A bound on how much memory one piece of work may add to its process (Linux: RLIMIT_DATA, which counts
the heap and private mappings, so Python's and Arrow's allocations alike). Past it, allocations fail with
MemoryError inside the block, which the caller turns into a message; the limit is lifted on leaving.

It bounds the whole process while the block runs, so it belongs in a worker that runs one task at a
time (a Celery prefork child), never in a web process serving other requests on other threads."""

from __future__ import annotations

import resource
from collections.abc import Iterator
from contextlib import contextmanager


def data_bytes() -> int:
    """The process's data size now (VmData), in bytes; 0 where /proc is not there."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmData:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@contextmanager
def memory_cap(megabytes: int) -> Iterator[None]:
    """Within the block the process may grow by at most `megabytes` more."""
    now = data_bytes()
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    cap = now + megabytes * 1024 * 1024
    if not now or (hard != resource.RLIM_INFINITY and cap > hard):
        yield  # no /proc, or a tighter limit is already set from outside: leave it
        return
    resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))
