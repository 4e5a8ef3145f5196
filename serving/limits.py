"""Answers one person may have being written at once, across chat pages, websockets and /v1: a counter
per person in the shared cache (every web process sees it). A web process that dies mid-answer leaves
its count behind at most SLOT_SECONDS."""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache

SLOT_SECONDS = 600  # longer than any one answer


def _key(user_id) -> str:
    return f"chat:inflight:{user_id}"


def take_slot(user_id) -> bool:
    """Count one more answer for this person; False (nothing counted) when they are at the limit."""
    key = _key(user_id)
    cache.add(key, 0, SLOT_SECONDS)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, SLOT_SECONDS)
        count = 1
    if count > settings.CHAT_MAX_CONCURRENT:
        free_slot(user_id)
        return False
    return True


def free_slot(user_id) -> None:
    try:
        cache.decr(_key(user_id))
    except ValueError:
        pass


def busy_message() -> str:
    most = settings.CHAT_MAX_CONCURRENT
    return (f"You already have {most} answer{'s' if most != 1 else ''} being written, the most one person may "
            "have at a time. Wait for one to finish (or stop it), then ask again.")  # fmt: skip
