"""The serving worker shares its batches fairly between people: one person's many waiting requests
do not hold back another's first by more than the batch already running. And chat tokens per minute
are limited per person (429 with Retry-After on /v1, a sentence in the chat)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid

import openai
import pytest
import redis
from django.test import Client

from accounts.services import create_api_key
from core import rpc
from serving import limits
from serving.client import LINE
from serving.worker import Worker, fair_batch
from tests.helpers import ARTIFACTS, wait_until
from training.models import TrainingJob

WORKER_LOG = ARTIFACTS / "serving-worker.log"  # written by the serving_worker fixture


def req(user: str, n: int, base: str = "tiny") -> dict:
    return {"id": f"{user}{n}", "user": user, "base": base}


def test_a_batch_takes_people_in_turn():
    waiting = [req("a", i) for i in range(16)] + [req("b", 0)]
    batch, rest = fair_batch(waiting, 8)
    assert [r["id"] for r in batch] == ["a0", "b0", "a1", "a2", "a3", "a4", "a5", "a6"]
    assert [waiting[i]["id"] for i in rest] == [f"a{i}" for i in range(7, 16)]  # in their order
    other_base = [req("a", 0), req("b", 0, base="big"), req("c", 0)]
    batch, rest = fair_batch(other_base, 8)  # one base model per batch: the oldest request's
    assert [r["id"] for r in batch] == ["a0", "c0"] and rest == [1]


def test_the_worker_takes_fair_batches_from_redis_and_keeps_the_rest_in_order():
    conn = redis.Redis.from_url(rpc.redis_url())
    line = rpc.Line(prefix="fair-test", requests=f"fair-test:{uuid.uuid4().hex}")
    worker = Worker(conn, line, max_adapters=1, max_adapter_bytes=1 << 20)
    try:
        for r in [req("a", i) for i in range(16)] + [req("b", 0)]:
            conn.lpush(line.requests, json.dumps(r))  # as callers do: newest on the left
        assert [r["id"] for r in worker.take_batch()] == ["a0", "b0"] + [f"a{i}" for i in range(1, 7)]
        assert [r["id"] for r in worker.take_batch()] == [f"a{i}" for i in range(7, 15)]
        assert [r["id"] for r in worker.take_batch()] == ["a15"]
        assert conn.llen(line.requests) == 0
    finally:
        conn.delete(line.requests)


@pytest.mark.django_db(transaction=True)
def test_another_persons_first_answer_is_not_held_behind_someone_elses_queue(
    live_url, serving_worker, model_setup, make_user
):
    """Real daphne and serving worker (batches of 8). The worker is paused while A sends 16 requests and
    then B one, so all 17 wait at once; the first batch it takes holds B's request beside 7 of A's
    (first come, first served would put B after all 16, in the third batch)."""
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
    # Which batch B was in, as the worker took it (arrival times at the clients depend on thread scheduling).
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
