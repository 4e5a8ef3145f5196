"""The Redis protocol between web processes and the serving worker.

A request is pushed on a list; its events come back on a pub/sub channel named
after it; a cancel is a short-lived key the worker checks between tokens. The
web process never imports torch.
"""

from __future__ import annotations

REQUESTS = "serving:requests"
CANCEL_TTL = 600


def events_channel(request_id: str) -> str:
    return f"serving:events:{request_id}"


def cancel_key(request_id: str) -> str:
    return f"serving:cancel:{request_id}"


def redis_url() -> str:
    from django.conf import settings

    if not settings.REDIS_URL:
        raise RuntimeError("Serving needs Redis: set REDIS_URL (make run starts an embedded one).")
    return settings.REDIS_URL
