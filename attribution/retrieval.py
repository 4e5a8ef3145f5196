"""Web side of retrieval: ask the retrieval thread of the serving worker (it holds the
embedding model) for the top records of some Datanets, and wait for the hits. Never
imports torch; a missing worker is a clear message, not a hang."""

from __future__ import annotations

from core import rpc

LINE = rpc.Line(prefix="attribution", requests="attribution:retrieve")
TIMEOUT = 90  # the first query loads the embedding model in the worker
MISSING = "Sources are unavailable right now: no retrieval worker answered."
RetrievalUnavailable = rpc.WorkerUnavailable


def _hits(reply: dict) -> list[dict]:
    if "error" in reply:
        raise RetrievalUnavailable(reply["error"])
    return reply["hits"]


async def retrieve(query: str, datanets: list[int], k: int, timeout: float = TIMEOUT) -> list[dict]:
    if not datanets:
        return []
    payload = {"query": query, "datanets": datanets, "k": k}
    return _hits(await rpc.call(LINE, payload, timeout, MISSING))


def retrieve_sync(query: str, datanets: list[int], k: int, timeout: float = TIMEOUT) -> list[dict]:
    if not datanets:
        return []
    return _hits(rpc.call_sync(LINE, {"query": query, "datanets": datanets, "k": k}, timeout, MISSING))
