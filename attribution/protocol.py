"""The Redis protocol for retrieval: the web side pushes a query on a list, a
retrieval thread in the serving worker (it already holds torch and the embedding
model) pushes the hits on a reply list named after the request."""

from __future__ import annotations

REQUESTS = "attribution:retrieve"
REPLY_TTL = 60


def reply_key(request_id: str) -> str:
    return f"attribution:reply:{request_id}"
