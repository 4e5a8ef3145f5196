"""The built-in backend: one ServingEngine and continuous batcher per base model, stepped by one thread
of the serving worker (torch releases the GIL in its kernels, so the worker's event loop keeps relaying
tokens and taking requests meanwhile)."""

from __future__ import annotations

import asyncio
import logging
import threading

from serving.engine.adapters import AdapterError
from serving.engine.backend import Backend, EventStream
from serving.engine.engine import Event, GenerationError, Request, ServingEngine

log = logging.getLogger("serving.engine")


class BuiltinBackend(Backend):
    name = "builtin"

    def __init__(self, max_adapters: int, max_adapter_bytes: int, max_batch: int = 256,
                 kv_cache_bytes: int | None = None):  # fmt: skip
        self.max_adapters, self.max_adapter_bytes = max_adapters, max_adapter_bytes
        self.max_batch, self.kv_cache_bytes = max_batch, kv_cache_bytes
        self.engines: dict[str, ServingEngine] = {}
        self.batchers: dict = {}
        self.streams: dict[str, EventStream] = {}
        self.incoming: list[tuple[str, Request, str, EventStream]] = []
        self.cancels: set[str] = set()
        self.cond = threading.Condition()  # guards incoming and cancels; held through an intake
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, name="serving-engine", daemon=True)

    async def start(self) -> None:
        self.thread.start()

    async def close(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify()
        await asyncio.to_thread(self.thread.join, 30)

    def generate(self, request: Request, user: str, base: str) -> EventStream:
        stream = EventStream(request.id, asyncio.get_running_loop())
        with self.cond:
            self.incoming.append((base, request, user, stream))
            self.cond.notify()
        return stream

    def cancel(self, request_id: str) -> None:
        with self.cond:
            self.cancels.add(request_id)
            self.cond.notify()

    def intake(self):
        return self.cond

    def metrics(self) -> dict:
        return {base: engine.metrics() for base, engine in self.engines.items()}

    # --- the engine thread -------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self.cond:
                while not (self.stopping or self.incoming or self.cancels or self._busy()):
                    self.cond.wait(1.0)
                if self.stopping:
                    break
                incoming, self.incoming = self.incoming, []
                cancels, self.cancels = self.cancels, set()
            for base, request, user, stream in incoming:
                self._accept(base, request, user, stream)
            for base, batcher in list(self.batchers.items()):
                for request_id in cancels:
                    batcher.cancel(request_id)
                if batcher.busy:
                    self._step(base, batcher)
        self._fail_all("The model server is shutting down; try again shortly.")

    def _busy(self) -> bool:
        return any(b.busy for b in self.batchers.values())

    def _accept(self, base: str, request: Request, user: str, stream: EventStream) -> None:
        self.streams[request.id] = stream
        try:
            if base not in self.engines:
                stream.put(Event(request.id, status="loading"))  # the first request for a base waits for it
                self.engines[base] = ServingEngine(
                    base, self.max_adapters, self.max_adapter_bytes, max_batch=self.max_batch,
                    kv_cache_bytes=self.kv_cache_bytes,
                )  # fmt: skip
                self.batchers[base] = self.engines[base].batcher(on_admit=_log_admission)
            self.batchers[base].submit(request, user)
        except (GenerationError, AdapterError) as exc:
            self._end(Event(request.id, finish_reason="error", error=exc))
        except Exception as exc:  # a base model that cannot load: this request fails, the worker goes on
            log.exception("could not load %s", base)
            self._end(Event(request.id, finish_reason="error", error=RuntimeError(f"The model could not load: {exc}")))

    def _step(self, base: str, batcher) -> None:
        try:
            events = batcher.step()
        except Exception as exc:  # keep serving; everyone in this batch gets an answer
            log.exception("a decode step failed")
            rows = batcher.running + batcher.waiting
            self.batchers[base] = self.engines[base].batcher(on_admit=_log_admission)
            events = [Event(r.request.id, finish_reason="error", error=RuntimeError(f"The model server failed: {exc}"))
                      for r in rows]  # fmt: skip
        for event in events:
            if event.finish_reason:
                self._end(event)
            elif event.request_id in self.streams:
                self.streams[event.request_id].put(event)

    def _end(self, event: Event) -> None:
        stream = self.streams.pop(event.request_id, None)
        if stream is not None:
            stream.put(event)

    def _fail_all(self, message: str) -> None:
        for request_id in list(self.streams):
            self._end(Event(request_id, finish_reason="error", error=RuntimeError(message)))


def _log_admission(rows, waiting: int) -> None:
    log.info("took %d of %d waiting request(s), for people %s", len(rows), waiting, sorted({r.user for r in rows}))
