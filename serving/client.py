"""Web side of serving: validate a chat request, hand it to a serving worker,
stream its events back. Async, for daphne; never imports torch."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from serving import protocol
from serving.engine.engine import GenerationError, GenerationParams
from serving.registry import ModelRef

FIRST_EVENT_TIMEOUT = 120.0  # a cold base model load on a GPU host can take a while
EVENT_TIMEOUT = 60.0
MAX_MESSAGES = 200
MAX_CHARS = 200_000
ROLES = {"system", "user", "assistant"}


class ServingUnavailable(RuntimeError):
    pass


@dataclass
class ChatRequest:
    model: ModelRef
    messages: list[dict]
    params: GenerationParams

    @property
    def payload(self) -> dict:
        return {
            "base": self.model.base_source,
            "adapter": self.model.id if self.model.adapter_path else None,
            "adapter_path": self.model.adapter_path,
            "messages": self.messages,
            "params": {
                "max_tokens": self.params.max_tokens,
                "temperature": self.params.temperature,
                "top_p": self.params.top_p,
                "stop": self.params.stop,
                "seed": self.params.seed,
            },  # fmt: skip
        }


def check_messages(messages) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise GenerationError("`messages` must be a non-empty list.")
    if len(messages) > MAX_MESSAGES:
        raise GenerationError(f"At most {MAX_MESSAGES} messages.")
    out, total = [], 0
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise GenerationError(f"messages[{i}] needs a role (system, user or assistant) and text content.")
        total += len(m["content"])
        out.append({"role": m["role"], "content": m["content"]})
    if total > MAX_CHARS:
        raise GenerationError(f"The messages are longer than {MAX_CHARS:,} characters.")
    return out


def params_from(data: dict) -> GenerationParams:
    stop = data.get("stop") or []
    if isinstance(stop, str):
        stop = [stop]
    try:
        return GenerationParams(
            max_tokens=int(data.get("max_tokens") or data.get("max_completion_tokens") or 128),
            temperature=float(data.get("temperature", 0.7) if data.get("temperature") is not None else 0.7),
            top_p=float(data.get("top_p", 1.0) if data.get("top_p") is not None else 1.0),
            stop=list(stop) if isinstance(stop, list) else stop,
            seed=int(data["seed"]) if data.get("seed") is not None else None,
        )
    except (TypeError, ValueError) as exc:
        raise GenerationError(f"Invalid generation parameter: {exc}") from None


async def stream(request: ChatRequest) -> AsyncIterator[dict]:
    """Events for one request: {"type": "token"|"done"|"error", ...}. Cancels the request
    on the worker if the caller stops iterating (a client that went away)."""
    import redis.asyncio as aioredis

    request_id = uuid.uuid4().hex
    conn = aioredis.Redis.from_url(protocol.redis_url())
    pubsub = conn.pubsub()
    finished = False
    try:
        await pubsub.subscribe(protocol.events_channel(request_id))
        await conn.lpush(protocol.REQUESTS, json.dumps({"id": request_id, **request.payload}))
        timeout = FIRST_EVENT_TIMEOUT
        while True:
            message = await _next_message(pubsub, timeout)
            if message is None:
                raise ServingUnavailable("No model server answered in time; try again shortly.")
            timeout = EVENT_TIMEOUT
            event = json.loads(message["data"])
            yield event
            if event["type"] in ("done", "error"):
                finished = True
                return
    finally:
        if not finished:
            await conn.set(protocol.cancel_key(request_id), "1", ex=protocol.CANCEL_TTL)
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
