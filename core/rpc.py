"""Request/reply with long-running workers over Redis (web processes never import torch).

A `Line` is one worker's request list plus the keys derived from a request id.
The caller pushes a JSON request holding an "id" on the list; the worker answers
either once (a reply list the caller pops, `call`) or as a stream of events on a
pub/sub channel (`stream`), and checks a short-lived cancel key between steps.
A worker that never answers is a clear error, not a hang.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

REPLY_TTL = 60
CANCEL_TTL = 600


class WorkerUnavailable(RuntimeError):
    status = 503  # the worker is down or busy: not the caller's fault


@dataclass(frozen=True)
class Line:
    prefix: str  # "serving", "attribution"
    requests: str  # the list the worker pops

    def reply_key(self, request_id: str) -> str:
        return f"{self.prefix}:reply:{request_id}"

    def events_channel(self, request_id: str) -> str:
        return f"{self.prefix}:events:{request_id}"

    def cancel_key(self, request_id: str) -> str:
        return f"{self.prefix}:cancel:{request_id}"


def redis_url() -> str:
    from django.conf import settings

    if not settings.REDIS_URL:
        raise RuntimeError("Workers need Redis: set REDIS_URL (make run starts an embedded one).")
    return settings.REDIS_URL


def _request(payload: dict) -> tuple[str, str]:
    request_id = uuid.uuid4().hex
    return request_id, json.dumps({"id": request_id, **payload})


def _reply(item, missing: str) -> dict:
    if item is None:
        raise WorkerUnavailable(missing)
    return json.loads(item[1])


async def call(line: Line, payload: dict, timeout: float, missing: str) -> dict:
    """Ask once and wait up to `timeout` seconds for the reply; `missing` is the message if none comes."""
    import redis.asyncio as aioredis

    request_id, body = _request(payload)
    conn = aioredis.Redis.from_url(redis_url(), socket_timeout=timeout + 5)
    try:
        await conn.lpush(line.requests, body)
        return _reply(await conn.blpop([line.reply_key(request_id)], timeout=timeout), missing)
    finally:
        await conn.aclose()


def call_sync(line: Line, payload: dict, timeout: float, missing: str) -> dict:
    import redis

    request_id, body = _request(payload)
    conn = redis.Redis.from_url(redis_url(), socket_timeout=timeout + 5)
    try:
        conn.lpush(line.requests, body)
        return _reply(conn.blpop([line.reply_key(request_id)], timeout=timeout), missing)
    finally:
        conn.close()


async def stream(line: Line, payload: dict, first_timeout: float, timeout: float, missing: str) -> AsyncIterator[dict]:
    """Events for one request until one of type "done" or "error". If the caller stops
    iterating early (a client that went away), the worker is told to cancel."""
    import redis.asyncio as aioredis

    request_id, body = _request(payload)
    conn = aioredis.Redis.from_url(redis_url())
    pubsub = conn.pubsub()
    finished = False
    try:
        await pubsub.subscribe(line.events_channel(request_id))
        await conn.lpush(line.requests, body)
        wait = first_timeout
        while True:
            message = await _next_message(pubsub, wait)
            if message is None:
                raise WorkerUnavailable(missing)
            event = json.loads(message["data"])
            if event.get("type") != "status":  # a status (e.g. "loading") keeps the long first wait
                wait = timeout
            yield event
            if event["type"] in ("done", "error"):
                finished = True
                return
    finally:
        if not finished:
            await conn.set(line.cancel_key(request_id), "1", ex=CANCEL_TTL)
        await pubsub.unsubscribe()
        await pubsub.aclose()
        await conn.aclose()


async def _next_message(pubsub, timeout: float):
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
        if message is not None:
            return message
    return None


# --- Worker side (a synchronous redis-py connection) ---------------------------------------


def reply(conn, line: Line, request_id: str, payload: dict) -> None:
    key = line.reply_key(request_id)
    conn.rpush(key, json.dumps(payload))
    conn.expire(key, REPLY_TTL)
