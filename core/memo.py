"""Results worth keeping a little while in the shared cache (every process sees them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.core.cache import cache

T = TypeVar("T")


def verify_seconds() -> int:
    """How long a recomputed Merkle root or chain read is reused for the same version (0: never)."""
    return settings.VERIFY_CACHE_SECONDS


def remembered(key: str, seconds: int, compute: Callable[[], T]) -> T:
    """cache[key], or compute() stored there for `seconds` (None results, and 0 seconds, are not kept)."""
    found = cache.get(key) if seconds > 0 else None
    if found is None:
        found = compute()
        if found is not None and seconds > 0:
            cache.set(key, found, seconds)
    return found
