"""The serving worker: `python -m serving.worker`.

A dedicated process (not a Celery task: generation streams for seconds and
batches requests across users) that keeps one ServingEngine per base model,
takes requests from Redis, batches whatever is queued for the same base (any mix
of adapters), and publishes tokens on each request's channel. Web processes
never import torch; more workers on more GPUs share the same request list.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time

from core import rpc

log = logging.getLogger("serving.worker")
MAX_BATCH = int(os.environ.get("SERVING_MAX_BATCH", "8"))
# Requests looked at to fill one batch fairly: with CHAT_MAX_CONCURRENT answers per person, 8 batches
# worth sees at least 16 people.
MAX_LOOK = 8 * MAX_BATCH
# Threads torch uses in this process (0: torch's default, one per core). On a box shared with other busy
# processes, fewer threads than cores keep decoding steady (issue 14 measured 380 vs 30-50 tokens/s).
THREADS = int(os.environ.get("SERVING_THREADS", "0"))


class Worker:
    def __init__(self, conn, line: rpc.Line, max_adapters: int, max_adapter_bytes: int):
        self.conn, self.line = conn, line
        self.max_adapters, self.max_adapter_bytes = max_adapters, max_adapter_bytes
        self.engines: dict = {}
        self.parsed: dict[bytes, dict] = {}  # requests put back in the line, already parsed
        self.stopping = False

    def stop(self, signum=None, frame=None) -> None:
        self.stopping = True

    def run(self) -> None:
        log.info("serving worker ready (pid %s)", os.getpid())
        print("serving worker ready", flush=True)
        while not self.stopping:
            batch = self.take_batch()
            if batch:
                self.serve(batch)

    def take_batch(self) -> list[dict]:
        """The next batch, fair across people: everything waiting is looked at (up to MAX_LOOK), the
        batch is filled round-robin over the people waiting for the oldest request's base model, and the
        rest goes back to the front of the line in its order. A person with many requests waiting does
        not hold back another's first by more than the batch already running."""
        item = self.conn.brpop(self.line.requests, timeout=1)
        if item is None:
            return []
        waiting = [item[1]]
        while len(waiting) < MAX_LOOK:
            more = self.conn.rpop(self.line.requests)
            if more is None:
                break
            waiting.append(more)
        requests = [self.parsed.get(raw) or json.loads(raw) for raw in waiting]
        batch, rest = fair_batch(requests, MAX_BATCH)
        self.parsed = {waiting[i]: requests[i] for i in rest}  # each request is parsed once
        if rest:  # rpush puts the last value at the front: the oldest must go last
            self.conn.rpush(self.line.requests, *[waiting[i] for i in reversed(rest)])
        log.info("took %d of %d waiting request(s), for people %s", len(batch), len(waiting),
                 sorted({str(r.get("user", "")) for r in batch}))  # fmt: skip
        return batch

    def publish(self, request_id: str, event: dict) -> None:
        rpc.publish(self.conn, self.line, request_id, event)

    def engine_for(self, base: str):
        from serving.engine import ServingEngine

        if base not in self.engines:
            self.engines[base] = ServingEngine(
                base, max_adapters=self.max_adapters, max_adapter_bytes=self.max_adapter_bytes
            )
        return self.engines[base]

    def requests_of(self, batch: list[dict]) -> list:
        from serving.engine import GenerationError, GenerationParams, Request

        requests = []
        for job in batch:
            try:
                params = GenerationParams(**job["params"])
                requests.append(
                    Request(job["id"], job["messages"], job.get("adapter"), job.get("adapter_path"), params)
                )
            except (GenerationError, TypeError) as exc:
                self.publish(job["id"], {"type": "error", "status": 400, "message": str(exc)})
        return requests

    def serve(self, batch: list[dict]) -> None:
        from serving.engine import AdapterError, GenerationError

        requests = self.requests_of(batch)
        if not requests:
            return
        if batch[0]["base"] not in self.engines:  # the first request for a base waits for its load
            for r in requests:
                self.publish(r.id, {"type": "status", "status": "loading"})
        try:
            self.generate(self.engine_for(batch[0]["base"]), requests)
        except (AdapterError, GenerationError) as exc:
            for r in requests:
                self.publish(r.id, {"type": "error", "status": 400, "message": str(exc)})
        except Exception as exc:  # keep serving the next requests; the callers get an answer
            log.exception("batch failed")
            for r in requests:
                self.publish(r.id, {"type": "error", "status": 503, "message": f"The model server failed: {exc}"})

    def generate(self, engine, requests: list) -> None:
        from serving.engine import GenerationError

        valid = []
        for r in requests:
            try:
                engine.check(r)
                valid.append(r)
            except GenerationError as exc:
                self.publish(r.id, {"type": "error", "status": 400, "message": str(exc)})
        if not valid:
            return
        started = time.perf_counter()
        for event in engine.stream(valid, cancelled=lambda rid: rpc.cancelled(self.conn, self.line, rid)):
            self.publish(event.request_id, _event_payload(event))
        log.info("served %d request(s) in %.2fs; %s", len(valid), time.perf_counter() - started, engine.metrics())


def fair_batch(waiting: list[dict], cap: int) -> tuple[list[dict], list[int]]:
    """(batch, indexes of `waiting` left for later). `waiting` is oldest first; the batch takes requests
    for the oldest one's base model, one per person in turn (people in the order of their oldest
    request), until `cap`."""
    base = waiting[0]["base"]
    queues: dict[str, list[int]] = {}
    for i, job in enumerate(waiting):
        if job["base"] == base:
            queues.setdefault(str(job.get("user", "")), []).append(i)
    taken: list[int] = []
    while len(taken) < cap and any(queues.values()):
        for person in list(queues):
            if queues[person] and len(taken) < cap:
                taken.append(queues[person].pop(0))
    chosen = set(taken)
    return [waiting[i] for i in taken], [i for i in range(len(waiting)) if i not in chosen]


def _event_payload(event) -> dict:
    if not event.finish_reason:
        return {"type": "token", "text": event.text}
    usage = {"prompt_tokens": event.prompt_tokens, "completion_tokens": event.completion_tokens,
             "total_tokens": event.prompt_tokens + event.completion_tokens}  # fmt: skip
    return {"type": "done", "text": event.text, "finish_reason": event.finish_reason, "usage": usage}


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "modelfactory.settings")
    import django

    django.setup()  # before anything that touches models
    if THREADS > 0:
        import torch

        torch.set_num_threads(THREADS)
        log.info("serving worker uses %d torch thread(s)", THREADS)
    import redis
    from django.conf import settings

    from attribution import retrieval_worker
    from serving.client import LINE

    # Retrieval for citations runs beside generation, so a long batch never delays the sources.
    retrieval_stopping = retrieval_worker.start(redis.Redis.from_url(rpc.redis_url()))
    worker = Worker(
        redis.Redis.from_url(rpc.redis_url()), LINE, settings.SERVING_MAX_ADAPTERS, settings.SERVING_MAX_ADAPTER_BYTES
    )
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    worker.run()
    retrieval_stopping.set()
    log.info("serving worker stopped")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(main())
