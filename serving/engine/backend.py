"""The serving backend boundary: what the serving worker needs from whatever generates the tokens.

`generate(request, user, base)` queues a request (adapter name + path, sampling parameters) and returns
an async stream of Events, the last one with a finish reason; `cancel(request_id)` ends one early;
`metrics()` says how the backend is doing. Two backends implement it: the built-in engine (continuous
batching in a thread of the worker, serving/engine/builtin.py) and vLLM (its OpenAI-compatible server,
serving/engine/vllm.py). The chat page, `/v1` and citations never see which one runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod

from serving.engine.engine import Event, Request


class EventStream:
    """Events of one request, put from any thread, read with `async for` on the worker's loop."""

    def __init__(self, request_id: str, loop: asyncio.AbstractEventLoop):
        self.request_id, self.loop = request_id, loop
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.ended = False

    def put(self, event: Event) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, event)

    def __aiter__(self):
        return self

    async def __anext__(self) -> Event:
        if self.ended:
            raise StopAsyncIteration
        event = await self.queue.get()
        self.ended = event.finish_reason is not None
        return event


class Backend(ABC):
    name = "backend"

    async def start(self) -> None:  # noqa: B027 - optional
        """Get ready to serve (connect, start threads)."""

    async def close(self) -> None:  # noqa: B027 - optional
        """Stop; requests still running end with an error."""

    @abstractmethod
    def generate(self, request: Request, user: str, base: str) -> EventStream:
        """Queue `request` for base model `base` on behalf of person `user`; its events stream back."""

    @abstractmethod
    def cancel(self, request_id: str) -> None:
        """End a request early; its stream ends with finish reason "cancelled"."""

    @abstractmethod
    def metrics(self) -> dict:
        """Figures for logs and the bench (tokens out, adapters resident, ...)."""

    def intake(self):
        """A block in which requests queued together are seen together (for fair admission)."""
        return contextlib.nullcontext()
