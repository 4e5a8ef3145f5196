"""Chat fair share per person, across chat pages, websockets and /v1, counted in the shared cache
(every web process sees the same totals); limits from accounts.quotas (settings, or staff's choice):

- CHAT_MAX_CONCURRENT answers being written at once: a counter of slots. A web process that dies
  mid-answer leaves its count behind at most SLOT_SECONDS.
- CHAT_TOKENS_PER_MINUTE tokens (question and answer, as the worker counts them) per clock minute:
  an answer is refused once the minute's total reached the limit, and frees when the minute ends."""

from __future__ import annotations

import time

from django.core.cache import cache

from accounts.quotas import limit_for_id

SLOT_SECONDS = 600  # longer than any one answer


def _key(user_id) -> str:
    return f"chat:inflight:{user_id}"


def _count(key: str, by: int, timeout: int) -> int:
    cache.add(key, 0, timeout)
    try:
        return cache.incr(key, by)
    except ValueError:  # expired between add and incr
        cache.add(key, by, timeout)
        return by


def take_slot(user_id) -> bool:
    """Count one more answer for this person; False (nothing counted) when they are at the limit."""
    most = limit_for_id(user_id, "CHAT_MAX_CONCURRENT")
    if most is None:
        return True
    if _count(_key(user_id), 1, SLOT_SECONDS) > most:
        free_slot(user_id)
        return False
    return True


def free_slot(user_id) -> None:
    try:
        cache.decr(_key(user_id))
    except ValueError:
        pass


def busy_message(user_id) -> str:
    most = limit_for_id(user_id, "CHAT_MAX_CONCURRENT")
    return (f"You already have {most} answer{'s' if most != 1 else ''} being written, the most one person may "
            "have at a time. Wait for one to finish (or stop it), then ask again.")  # fmt: skip


def _minute_key(user_id, now: float) -> str:
    return f"chat:tokens:{user_id}:{int(now // 60)}"


def tokens_refusal(user_id) -> tuple[str, int] | None:
    """(message, seconds to wait) when this person used the minute's tokens; None when they may ask."""
    most = limit_for_id(user_id, "CHAT_TOKENS_PER_MINUTE")
    now = time.time()
    if most is None or (cache.get(_minute_key(user_id, now)) or 0) < most:
        return None
    wait = max(1, 60 - int(now % 60))
    return (f"You have used {most:,} tokens of chat in this minute, the most one person may use. "
            f"Ask again in {wait} second{'s' if wait != 1 else ''}."), wait  # fmt: skip


def spend_tokens(user_id, tokens: int) -> None:
    if tokens > 0:
        _count(_minute_key(user_id, time.time()), int(tokens), 120)
