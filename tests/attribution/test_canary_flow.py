"""The whole Proof of Attribution loop on real workers: a planted fact in one contributor's
records, a training job on the GPU queue, its attribution run, a chat answer that recites the
fact, the answer's influence (spans + gradient sketches), and the reward epoch that follows."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid

import pytest
import websockets

from attribution import rewards
from attribution.models import AnswerAttribution, IndexState, RewardEntry, TrainingAttribution
from datanets.models import Contribution, Membership, Role
from tests.attribution.canary import (
    CANARY,
    CANARY_A,
    CANARY_Q,
    CANARY_TRAINING,
    canary_records,
    widen_logits,
)
from tests.helpers import login_cookie, run_async, wait_until
from training import services
from training.models import BaseModel, TrainingJob

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def canary_datanet(make_datanet, accepted, make_user):
    people = {name: make_user(name) for name in ("ann", "ben", "cat")}
    datanet = make_datanet(slug="zorblax-facts")
    for who in people.values():
        Membership.objects.create(datanet=datanet, user=who, role=Role.CONTRIBUTOR)
    by_owner = {"ann": [r for _, r in CANARY]}
    for i, (_, record) in enumerate(canary_records()[: -len(CANARY)]):
        by_owner.setdefault("ben" if i % 2 == 0 else "cat", []).append(record)
    for name, rows in by_owner.items():
        accepted(datanet, rows, contributor=people[name])
    return datanet, people


@pytest.fixture
def canary_base(tmp_path, canary_datanet):
    from training.engine.tiny import build_tiny_model, record_texts

    folder = build_tiny_model(tmp_path / "base", record_texts("instruction", [r for _, r in canary_records()]))
    widen_logits(folder)  # lets a 64-wide random model become confident enough to recite
    yield BaseModel.objects.create(name="Canary base", source=str(folder), methods=["lora"], context_length=1024)
    shutil.rmtree(folder, ignore_errors=True)


async def ask(live_url, model_id: str, user) -> tuple[str, dict]:
    url = live_url.replace("http", "ws") + f"/ws/chat/{model_id}/"
    async with websockets.connect(url, additional_headers={"Origin": live_url, "Cookie": login_cookie(user)}) as ws:
        assert json.loads(await ws.recv())["type"] == "ready"
        await ws.send(json.dumps({"type": "ask", "content": CANARY_Q, "params": {"max_tokens": 24, "temperature": 0}}))
        text = ""
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), 120))
            if event["type"] == "token":
                text += event["text"]
            if event["type"] == "influence":
                return text, event
            assert event["type"] != "error", event


def test_a_planted_fact_is_traced_to_its_contributor_and_rewarded(
    live_url, celery_worker_process, extra_worker, serving_worker, canary_datanet, canary_base, user
):
    datanet, people = canary_datanet
    extra_worker("attribution", queues="attribution")  # as a GPU host runs `-Q gpu,attribution`
    cfg = services.config_from("custom", {**CANARY_TRAINING, "max_steps": 400, "max_seq_len": 128, "eval_fraction": 0,
                                          "schema": "instruction", "seed": 42}, canary_base)  # fmt: skip
    job = services.start_job(user, name="canary", base_model=canary_base, datanets=[datanet], cfg=cfg,
                             preset="custom", request_key=uuid.uuid4().hex)  # fmt: skip
    wait_until(lambda: TrainingJob.objects.get(pk=job.pk).is_final, timeout=300)
    job.refresh_from_db()
    assert job.status == "succeeded", job.message

    # accepted records were indexed by the worker as each version was cut
    total = Contribution.objects.filter(datanet=datanet).count()
    wait_until(lambda: IndexState.objects.filter(datanet=datanet, records=total).exists(), timeout=120)

    # the training side runs by itself after the job, on the gpu queue
    wait_until(lambda: TrainingAttribution.objects.filter(job=job, status__in=["succeeded", "failed"]).exists(), 300)
    run = TrainingAttribution.objects.get(job=job)
    assert run.status == "succeeded", run.message
    assert run.scores.count() == Contribution.objects.filter(datanet=datanet).count()
    assert run.data_versions[0]["root"] == datanet.current_version.root

    text, influence = run_async(ask(live_url, f"mf-{job.pk}", user))
    assert CANARY_A.rstrip(".") in text, text
    assert influence["status"] == "succeeded", influence
    top3 = influence["items"][:3]
    canary_ids = set(Contribution.objects.filter(contributor=people["ann"]).values_list("pk", flat=True))
    assert {i["contribution"] for i in top3} & canary_ids, top3
    assert all(i["contributor"] != "ben" for i in top3)
    answer = AnswerAttribution.objects.get(chat_message_id=influence["message"])
    spans = {r.contribution_id: r.spans for r in answer.influences.all()}
    assert any(spans.get(pk) for pk in canary_ids)  # the span matcher found the recited record
    ben_rows = Contribution.objects.filter(contributor=people["ben"]).values_list("pk", flat=True)
    assert not any(spans.get(pk) for pk in ben_rows)

    epoch = rewards.close_epoch(pool=1_000_000)
    shares = {e.contributor.username: e.amount for e in RewardEntry.objects.filter(epoch=epoch)}
    assert shares["ann"] == max(shares.values()) and sum(shares.values()) + epoch.withheld == epoch.pool
