"""The serving worker shares its batch fairly between people: one person's many waiting requests do not
hold back another's first by more than the step already running. And chat tokens per minute
are limited per person (429 with Retry-After on /v1, a sentence in the chat)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import redis
from django.test import Client

from accounts.services import create_api_key
from core import rpc
from serving import limits
from serving.client import LINE
from serving.worker import Worker
from tests.helpers import ARTIFACTS, wait_until
from training.models import TrainingJob

WORKER_LOG = ARTIFACTS / "serving-worker.log"  # written by the serving_worker fixture


def req(user: str, n: int, base: str = "tiny") -> dict:
    return {"id": f"{user}{n}", "user": user, "base": base}


def test_the_worker_takes_what_it_has_room_for_and_leaves_the_rest_queued_in_order():
    import redis.asyncio as aioredis

    conn = redis.Redis.from_url(rpc.redis_url())
    line = rpc.Line(prefix="fair-test", requests=f"fair-test:{uuid.uuid4().hex}")
    for r in [req("a", i) for i in range(5)]:
        conn.lpush(line.requests, json.dumps(r))  # as callers do: newest on the left

    async def take_twice():
        worker = Worker(aioredis.Redis.from_url(rpc.redis_url()), line, backend=None, max_in_flight=3)
        first = await worker.take()
        worker.tasks = {r["id"]: None for r in first}  # all three still running
        full = await worker.take()
        worker.tasks = {}
        return first, full, await worker.take()

    try:
        with ThreadPoolExecutor(1) as pool:  # a loop of its own (a test before may have left one running)
            first, full, rest = pool.submit(asyncio.run, take_twice()).result()
        assert [r["id"] for r in first] == ["a0", "a1", "a2"] and full == []
        assert [r["id"] for r in rest] == ["a3", "a4"] and conn.llen(line.requests) == 0
    finally:
        conn.delete(line.requests)


@pytest.mark.django_db(transaction=True)
@pytest.mark.builtin_serving  # the built-in engine's admission; vLLM schedules first come, first served
def test_another_persons_first_answer_is_not_held_behind_someone_elses_queue(
    live_url, serving_worker, model_setup, make_user
):
    """Real daphne and serving worker (at most 8 rows decoded together). The worker is paused while A
    sends 16 requests and then B one, so all 17 wait at once; the first 8 it admits hold B's request
    beside 7 of A's (first come, first served would admit B only once 9 of A's had finished)."""
    job, key_a = model_setup  # A owns this model
    b = make_user("bob")
    job_b = TrainingJob.objects.create(owner=b, name="B's tutor", base_model=job.base_model, config={},
                                       status="succeeded", request_key="b", adapter_dir=job.adapter_dir)  # fmt: skip
    _, key_b = create_api_key(b, "b")
    events: list[tuple[float, str, str]] = []  # (time, who, "first" | "done")
    lock = threading.Lock()

    def ask(who: str, key: str, model: str) -> None:
        client = openai.OpenAI(base_url=live_url + "/v1", api_key=key, max_retries=0, timeout=180)
        stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "What is LoRA?"}],
                                                max_tokens=24, temperature=0, stream=True)  # fmt: skip
        first = True
        for chunk in stream:
            if first and chunk.choices and chunk.choices[0].delta.content:
                with lock:
                    events.append((time.monotonic(), who, "first"))
                first = False
        with lock:
            events.append((time.monotonic(), who, "done"))

    conn = redis.Redis.from_url(rpc.redis_url())
    os.kill(serving_worker.pid, signal.SIGSTOP)
    # A pop the worker was blocked in when stopped is still open on the Redis server for up to its 1 s
    # timeout, and would hand A's first request to the stopped worker: let it lapse first.
    time.sleep(1.5)
    threads = []
    try:
        for i in range(16):
            threads.append(threading.Thread(target=ask, args=(f"a{i}", key_a, f"mf-{job.pk}")))
            threads[-1].start()
        wait_until(lambda: conn.llen(LINE.requests) == 16, timeout=30)
        threads.append(threading.Thread(target=ask, args=("b", key_b, f"mf-{job_b.pk}")))
        threads[-1].start()
        wait_until(lambda: conn.llen(LINE.requests) == 17, timeout=30)
        log_from = WORKER_LOG.stat().st_size
        resumed = time.monotonic()
    finally:
        os.kill(serving_worker.pid, signal.SIGCONT)
    for t in threads:
        t.join(timeout=180)
    a_firsts = sorted(t for t, who, kind in events if who.startswith("a") and kind == "first")
    assert len(a_firsts) == 16 and any(who == "b" and kind == "done" for _, who, kind in events)
    # When B was admitted, as the worker did it (arrival times at the clients depend on thread scheduling).
    with WORKER_LOG.open() as log:
        log.seek(log_from)
        first_batch = next(line for line in log if "took " in line)
    assert "took 8 of 17 waiting" in first_batch and f"'{b.pk}'" in first_batch, first_batch
    assert f"'{job.owner_id}'" in first_batch  # shared with A, not given to B alone
    b_first = next(t for t, who, kind in events if who == "b" and kind == "first")
    print(f"\nB's first token {b_first - resumed:.2f}s after the worker resumed; A's last first token "
          f"{a_firsts[-1] - resumed:.2f}s")  # fmt: skip


@pytest.mark.django_db
def test_chat_tokens_per_minute(model_setup, user, settings):
    job, key = model_setup
    settings.CHAT_TOKENS_PER_MINUTE = 1000
    limits.spend_tokens(user.pk, 1000)  # answers this minute, on a chat page say
    body = json.dumps({"model": f"mf-{job.pk}", "messages": [{"role": "user", "content": "Hi"}]})
    response = Client().post("/v1/chat/completions", body, content_type="application/json",
                             HTTP_AUTHORIZATION=f"Bearer {key}")  # fmt: skip
    assert response.status_code == 429 and 1 <= int(response["Retry-After"]) <= 60
    assert "You have used 1,000 tokens of chat in this minute" in response.json()["error"]["message"]
    assert limits.tokens_refusal(user.pk) is not None
    settings.CHAT_TOKENS_PER_MINUTE = 1001
    assert limits.tokens_refusal(user.pk) is None  # under the limit again: asks go through
