"""The serving worker: `python -m serving.worker`.

A dedicated process (not a Celery task: generation streams for seconds and
batches requests across users) that keeps one ServingEngine per base model,
takes requests from Redis, batches whatever is queued for the same base (any mix
of adapters), and publishes tokens on each request's channel. Web processes
never import torch; more workers on more GPUs share the same request list.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys

from core import rpc

log = logging.getLogger("serving.worker")
# Rows decoded together at most (0: as many as the KV cache memory allows, up to 256).
MAX_BATCH = int(os.environ.get("SERVING_MAX_BATCH", "0")) or 256
# Requests this worker holds at once (running or waiting in its backend); the rest stay in Redis for
# other workers. Fair admission between people happens among the ones held.
MAX_IN_FLIGHT = int(os.environ.get("SERVING_MAX_IN_FLIGHT", "0")) or max(64, 2 * min(MAX_BATCH, 256))
# Threads torch uses in this process (0: torch's default, one per core). On a box shared with other busy
# processes, fewer threads than cores keep decoding steady (issue 14 measured 380 vs 30-50 tokens/s).
THREADS = int(os.environ.get("SERVING_THREADS", "0"))
CANCEL_POLL = 0.1  # seconds between checks of the cancel keys of the requests in flight


class Worker:
    """Takes requests from Redis, hands them to a backend (serving/engine/backend.py), relays events."""

    def __init__(self, conn, line: rpc.Line, backend, max_in_flight: int = MAX_IN_FLIGHT):
        self.conn, self.line, self.backend = conn, line, backend  # conn: a redis.asyncio client
        self.max_in_flight = max_in_flight
        self.tasks: dict[str, asyncio.Task] = {}
        self.stopping = False

    def stop(self, signum=None, frame=None) -> None:
        self.stopping = True

    async def run(self) -> None:
        await self.backend.start()
        watcher = asyncio.create_task(self.watch_cancels())
        log.info("serving worker ready (pid %s, backend %s)", os.getpid(), self.backend.name)
        print("serving worker ready", flush=True)
        try:
            while not self.stopping:
                jobs = await self.take()
                with self.backend.intake():  # queued together, so admission sees them together
                    for job in jobs:
                        self.start(job)
        finally:
            watcher.cancel()
            await self.backend.close()
            await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    async def take(self) -> list[dict]:
        """Waiting requests, oldest first, as many as this worker has room for (the rest stay queued)."""
        room = self.max_in_flight - len(self.tasks)
        if room <= 0:
            await asyncio.sleep(0.02)
            return []
        item = await self.conn.brpop([self.line.requests], timeout=1)
        if item is None:
            return []
        raws = [item[1]]
        while len(raws) < room:
            more = await self.conn.rpop(self.line.requests)
            if more is None:
                break
            raws.append(more)
        return [json.loads(raw) for raw in raws]

    def start(self, job: dict) -> None:
        from serving.engine import GenerationError, GenerationParams, Request

        try:
            params = GenerationParams(**job["params"])
            request = Request(job["id"], job["messages"], job.get("adapter"), job.get("adapter_path"), params)
        except (GenerationError, TypeError, KeyError) as exc:
            self.tasks[job.get("id", "")] = asyncio.create_task(self.refuse(job.get("id", ""), exc))
            return
        stream = self.backend.generate(request, str(job.get("user", "")), job["base"])
        self.tasks[request.id] = asyncio.create_task(self.relay(request.id, stream))

    async def refuse(self, request_id: str, exc: Exception) -> None:
        try:
            await self.publish(request_id, {"type": "error", "status": 400, "message": str(exc)})
        finally:
            self.tasks.pop(request_id, None)

    async def relay(self, request_id: str, stream) -> None:
        try:
            async for event in stream:
                await self.publish(request_id, _event_payload(event))
                if event.finish_reason:
                    log.info("request %s ended (%s) after %d token(s)", request_id, event.finish_reason,
                             event.completion_tokens)  # fmt: skip
        except Exception:  # a lost Redis connection: the caller times out with a clear message
            log.exception("could not relay %s", request_id)
        finally:
            self.tasks.pop(request_id, None)

    async def publish(self, request_id: str, event: dict) -> None:
        await self.conn.publish(self.line.events_channel(request_id), json.dumps(event))

    async def watch_cancels(self) -> None:
        """Callers that went away leave a cancel key; the backend drops their requests between steps."""
        while True:
            await asyncio.sleep(CANCEL_POLL)
            ids = list(self.tasks)
            if not ids:
                continue
            try:
                flags = await self.conn.mget([self.line.cancel_key(i) for i in ids])
            except Exception:
                log.exception("could not read cancel keys")
                continue
            for request_id, flag in zip(ids, flags, strict=True):
                if flag:
                    self.backend.cancel(request_id)


def _event_payload(event) -> dict:
    from serving.engine import AdapterError, GenerationError

    if event.status:
        return {"type": "status", "status": event.status}
    if event.finish_reason == "error":
        status = 400 if isinstance(event.error, (AdapterError, GenerationError)) else 503
        return {"type": "error", "status": status, "message": str(event.error)}
    if not event.finish_reason:
        return {"type": "token", "text": event.text}
    usage = {"prompt_tokens": event.prompt_tokens, "completion_tokens": event.completion_tokens,
             "total_tokens": event.prompt_tokens + event.completion_tokens}  # fmt: skip
    return {"type": "done", "text": event.text, "finish_reason": event.finish_reason, "usage": usage}


def backend_from(settings):
    """The backend SERVING_BACKEND names: "builtin" (the default) or "vllm" (at VLLM_URL)."""
    if settings.SERVING_BACKEND == "vllm":
        from serving.engine.vllm import VllmBackend

        return VllmBackend(settings.VLLM_URL, settings.SERVING_MAX_ADAPTERS, settings.SERVING_MAX_ADAPTER_BYTES)
    from serving.engine.builtin import BuiltinBackend

    return BuiltinBackend(settings.SERVING_MAX_ADAPTERS, settings.SERVING_MAX_ADAPTER_BYTES, max_batch=MAX_BATCH,
                          kv_cache_bytes=settings.SERVING_KV_CACHE_BYTES)  # fmt: skip


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "modelfactory.settings")
    import django

    django.setup()  # before anything that touches models
    if THREADS > 0:
        import torch

        torch.set_num_threads(THREADS)
        log.info("serving worker uses %d torch thread(s)", THREADS)
    import redis
    import redis.asyncio as aioredis
    from django.conf import settings

    from attribution import retrieval_worker
    from serving.client import LINE

    # Retrieval for citations runs beside generation, so a long answer never delays the sources.
    retrieval_stopping = retrieval_worker.start(redis.Redis.from_url(rpc.redis_url()))
    worker = Worker(aioredis.Redis.from_url(rpc.redis_url()), LINE, backend_from(settings))
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    asyncio.run(worker.run())
    retrieval_stopping.set()
    log.info("serving worker stopped")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(main())
