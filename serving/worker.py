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

log = logging.getLogger("serving.worker")
MAX_BATCH = int(os.environ.get("SERVING_MAX_BATCH", "8"))


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "modelfactory.settings")
    import django

    django.setup()
    import redis
    from django.conf import settings

    from serving import protocol
    from serving.engine import AdapterError, GenerationError, GenerationParams, Request, ServingEngine

    conn = redis.Redis.from_url(protocol.redis_url())
    from attribution import service as retrieval_service

    # Retrieval for citations runs beside generation, so a long batch never delays the sources.
    retrieval_stopping = retrieval_service.start(redis.Redis.from_url(protocol.redis_url()))
    engines: dict[str, ServingEngine] = {}
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def publish(request_id: str, payload: dict) -> None:
        conn.publish(protocol.events_channel(request_id), json.dumps(payload))

    def engine_for(base: str) -> ServingEngine:
        if base not in engines:
            engines[base] = ServingEngine(
                base, max_adapters=settings.SERVING_MAX_ADAPTERS, max_adapter_bytes=settings.SERVING_MAX_ADAPTER_BYTES
            )
        return engines[base]

    log.info("serving worker ready (pid %s)", os.getpid())
    print("serving worker ready", flush=True)
    while not stopping:
        item = conn.brpop(protocol.REQUESTS, timeout=1)
        if item is None:
            continue
        batch = [json.loads(item[1])]
        while len(batch) < MAX_BATCH:  # take what else is already waiting for the same base
            more = conn.rpop(protocol.REQUESTS)
            if more is None:
                break
            job = json.loads(more)
            if job["base"] == batch[0]["base"]:
                batch.append(job)
            else:
                conn.rpush(protocol.REQUESTS, more)  # back of the line is the front: served next round
                break
        requests = []
        for job in batch:
            try:
                params = GenerationParams(**job["params"])
                requests.append(
                    Request(job["id"], job["messages"], job.get("adapter"), job.get("adapter_path"), params)
                )
            except (GenerationError, TypeError) as exc:
                publish(job["id"], {"type": "error", "status": 400, "message": str(exc)})
        if not requests:
            continue
        try:
            engine = engine_for(batch[0]["base"])
            valid = []
            for r in requests:
                try:
                    engine.check(r)
                    valid.append(r)
                except GenerationError as exc:
                    publish(r.id, {"type": "error", "status": 400, "message": str(exc)})
            if not valid:
                continue
            cancelled = lambda rid: conn.exists(protocol.cancel_key(rid)) == 1  # noqa: E731
            started = time.perf_counter()
            for event in engine.stream(valid, cancelled=cancelled):
                payload = {"type": "token", "text": event.text}
                if event.finish_reason:
                    payload = {"type": "done", "text": event.text, "finish_reason": event.finish_reason,
                               "usage": {"prompt_tokens": event.prompt_tokens,
                                         "completion_tokens": event.completion_tokens,
                                         "total_tokens": event.prompt_tokens + event.completion_tokens}}  # fmt: skip
                publish(event.request_id, payload)
            log.info("served %d request(s) in %.2fs; %s", len(valid), time.perf_counter() - started, engine.metrics())
        except (AdapterError, GenerationError) as exc:
            for r in requests:
                publish(r.id, {"type": "error", "status": 400, "message": str(exc)})
        except Exception as exc:  # keep serving the next requests; the callers get an answer
            log.exception("batch failed")
            for r in requests:
                publish(r.id, {"type": "error", "status": 503, "message": f"The model server failed: {exc}"})
    retrieval_stopping.set()
    log.info("serving worker stopped")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(main())
