"""The ground floor: enqueue by task name after commit, routes, worker request/reply, live events."""

from __future__ import annotations

import ast
import threading

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import transaction

from core import live, rpc
from core.queue import enqueue
from modelfactory.celery import app
from tests.helpers import BASE_DIR, run_async, wait_until
from tests.testapp.models import SampleJob


def _enqueued_names() -> list[tuple[str, str]]:
    """(module, task name) of every enqueue(job, "name") / enqueue_task("name", ...) in the apps."""
    found = []
    for path in sorted(BASE_DIR.glob("*/**/*.py")):
        top = path.parts[len(BASE_DIR.parts)]
        if top in ("tests", "bench") or top.startswith(".") or "migrations" in path.parts:  # .venv, .venv-vllm
            continue
        module = ".".join(path.relative_to(BASE_DIR).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                position = {"enqueue": 1, "enqueue_task": 0}.get(node.func.id)
                if position is not None and len(node.args) > position and isinstance(node.args[position], ast.Constant):
                    found.append((module, node.args[position].value))
    return found


def test_every_enqueued_name_is_a_registered_task():
    """Services name their tasks instead of importing them: a typo must fail here, not in production."""
    app.loader.import_default_modules()
    names = _enqueued_names()
    assert len(names) >= 6  # training, upload, export, two attribution jobs, index sync, anchors
    assert [(m, n) for m, n in names if n not in app.tasks] == []


@pytest.mark.parametrize(
    "task, queue",
    [
        ("training.run_training", "gpu"),
        ("attribution.training_attribution", "attribution"),
        ("attribution.answer_attribution", "default"),
        ("datanets.ingest_upload", "default"),
        ("serving.merge_export", "default"),
    ],
)
def test_routes_send_each_task_to_its_hardware(task, queue):
    assert app.amqp.router.route({}, task)["queue"].name == queue


@pytest.mark.django_db(transaction=True)
def test_enqueue_sends_after_commit_and_records_the_task_id(celery_worker_process):
    with transaction.atomic():
        job = SampleJob.objects.create(payload="after commit")
        enqueue(job, "testapp.run_sample_job")
        # Nothing is sent inside the transaction: a worker could not see the row yet.
        assert SampleJob.objects.get(pk=job.pk).celery_task_id == ""
    wait_until(lambda: SampleJob.objects.get(pk=job.pk).is_final)
    job.refresh_from_db()
    assert job.status == "succeeded" and job.message == "done: after commit"
    assert app.AsyncResult(job.celery_task_id).get(timeout=30) == "done"


LINE = rpc.Line(prefix="test-core", requests="test-core:requests")


def test_a_call_with_no_worker_is_a_clear_error_not_a_hang():
    with pytest.raises(rpc.WorkerUnavailable, match="nobody is listening"):
        rpc.call_sync(LINE, {"q": 1}, timeout=1, missing="nobody is listening")


def test_a_call_gets_the_reply_of_the_worker_that_took_it():
    import json

    import redis

    conn = redis.Redis.from_url(rpc.redis_url())
    conn.delete(LINE.requests)

    def worker():
        _, raw = conn.brpop(LINE.requests, timeout=10)
        request = json.loads(raw)
        rpc.reply(conn, LINE, request["id"], {"echo": request["q"]})

    thread = threading.Thread(target=worker)
    thread.start()
    assert rpc.call_sync(LINE, {"q": "hello"}, timeout=10, missing="no worker") == {"echo": "hello"}
    thread.join()


def test_live_send_reaches_a_group_member_as_its_payload():
    layer = get_channel_layer()

    async def go():
        channel = await layer.new_channel()
        await layer.group_add("test-core-group", channel)
        # live.send is the synchronous door workers use; run it off the event loop as they do.
        await sync_to_async(live.send)("test-core-group", {"type": "point", "step": 3})
        return await layer.receive(channel)

    assert run_async(go()) == {"type": "live.event", "payload": {"type": "point", "step": 3}}
