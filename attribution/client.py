"""Web side of retrieval: ask the serving worker's retrieval thread, wait for the hits.
Never imports torch. A missing worker is a clear message, not a hang."""

from __future__ import annotations

import json
import uuid

from attribution import protocol

TIMEOUT = 90  # the first query loads the embedding model in the worker (seconds on a busy CPU)


class RetrievalUnavailable(RuntimeError):
    status = 503  # the retrieval worker is down or busy: not the caller's fault


def _request(query: str, datanets: list[int], k: int) -> tuple[str, str]:
    request_id = uuid.uuid4().hex
    return request_id, json.dumps({"id": request_id, "query": query, "datanets": datanets, "k": k})


def _result(item) -> list[dict]:
    if item is None:
        raise RetrievalUnavailable("Sources are unavailable right now: no retrieval worker answered.")
    reply = json.loads(item[1])
    if "error" in reply:
        raise RetrievalUnavailable(reply["error"])
    return reply["hits"]


async def retrieve(query: str, datanets: list[int], k: int, timeout: float = TIMEOUT) -> list[dict]:
    import redis.asyncio as aioredis

    from serving.protocol import redis_url

    if not datanets:
        return []
    request_id, payload = _request(query, datanets, k)
    conn = aioredis.Redis.from_url(redis_url(), socket_timeout=timeout + 5)
    try:
        await conn.lpush(protocol.REQUESTS, payload)
        return _result(await conn.blpop([protocol.reply_key(request_id)], timeout=timeout))
    finally:
        await conn.aclose()


def retrieve_sync(query: str, datanets: list[int], k: int, timeout: float = TIMEOUT) -> list[dict]:
    import redis

    from serving.protocol import redis_url

    if not datanets:
        return []
    request_id, payload = _request(query, datanets, k)
    conn = redis.Redis.from_url(redis_url(), socket_timeout=timeout + 5)
    try:
        conn.lpush(protocol.REQUESTS, payload)
        return _result(conn.blpop([protocol.reply_key(request_id)], timeout=timeout))
    finally:
        conn.close()
