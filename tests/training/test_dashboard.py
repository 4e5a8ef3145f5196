"""The live dashboard: websocket history then live points, access, and the page in Chromium."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.helpers import ARTIFACTS, login_cookie, run_async, sign_in, wait_until
from training import services
from training.models import MetricPoint, TrainingJob

pytestmark = pytest.mark.django_db(transaction=True)


def make_job(user, base_model, datanet) -> TrainingJob:
    cfg = services.config_from("quick", {"max_steps": 5, "schema": "instruction"}, base_model)
    job = TrainingJob.objects.create(owner=user, name="manual", base_model=base_model, config=cfg.to_dict(),
                                     request_key=uuid.uuid4().hex)  # fmt: skip
    return job


def test_a_client_gets_every_stored_point_then_live_ones(live_url, user, other_user, base_model, glossary):
    job = make_job(user, base_model, glossary)
    for step in (1, 2, 3):
        MetricPoint.objects.create(job=job, step=step, train_loss=5.0 - step / 10)
    url = live_url.replace("http", "ws") + f"/ws/training/jobs/{job.pk}/"

    async def go():
        headers = {"Origin": live_url, "Cookie": login_cookie(user)}
        async with websockets.connect(url, additional_headers=headers, open_timeout=10) as ws:
            history = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert history["type"] == "history" and [p["step"] for p in history["points"]] == [1, 2, 3]
            await asyncio.get_running_loop().run_in_executor(
                None, services.record_point, job, {"step": 4, "train_loss": 4.5, "learning_rate": 1e-4}
            )
            live = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert live == {"type": "point", "point": {"step": 4, "train_loss": 4.5, "learning_rate": 1e-4}}

    run_async(go())
    assert MetricPoint.objects.filter(job=job).count() == 4


def test_only_the_owner_may_connect(live_url, user, other_user, base_model, glossary):
    job = make_job(user, base_model, glossary)
    url = live_url.replace("http", "ws") + f"/ws/training/jobs/{job.pk}/"

    async def status(headers):
        try:
            async with websockets.connect(url, additional_headers=headers, open_timeout=10):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    assert run_async(status({"Origin": live_url, "Cookie": login_cookie(other_user)})) == 403
    assert run_async(status({"Origin": live_url})) == 403
    assert run_async(status({"Origin": "http://evil.example", "Cookie": login_cookie(user)})) == 403
    assert run_async(status({"Origin": live_url, "Cookie": login_cookie(user)})) == 101


@pytest.mark.browser
def test_a_novice_trains_watches_reloads_and_finds_the_model(
    page, live_url, celery_worker_process, user, base_model, glossary
):
    sign_in(page, live_url, "alice")
    page.get_by_role("link", name="Train", exact=True).click()
    page.get_by_label("Glossary").check()
    page.get_by_label("Quick").check()
    page.locator("details.advanced summary").click()
    page.fill("input[name=max_steps]", "150")  # long enough to reload mid-run on this CPU
    page.fill("input[name=max_seq_len]", "96")
    page.get_by_test_id("start").click()
    page.wait_for_url("**/training/jobs/*/")
    job = TrainingJob.objects.get()
    page.wait_for_function("window.MFTraining && window.MFTraining.points().length >= 5", timeout=60_000)
    page.reload()
    page.wait_for_function("document.getElementById('training-dashboard').dataset.synced === 'yes'")
    # Right after a reload the chart already holds every point stored so far.
    shown = page.evaluate("window.MFTraining.points().map(p => p.step)")
    stored_then = set(MetricPoint.objects.filter(job=job).values_list("step", flat=True))
    assert set(shown) >= {s for s in stored_then if s <= max(shown)} and shown == sorted(shown)
    assert shown[0] == 1 and shown == list(range(1, len(shown) + 1))
    page.screenshot(path=str(ARTIFACTS / "training-dashboard.png"), full_page=True)
    wait_until(lambda: TrainingJob.objects.get(pk=job.pk).is_final, timeout=240)
    page.wait_for_function("document.getElementById('job-status').dataset.status === 'succeeded'", timeout=30_000)
    final = page.evaluate(
        "window.MFTraining.points().filter(p => p.train_loss != null).map(p => [p.step, p.train_loss])"
    )
    stored = list(MetricPoint.objects.filter(job=job).exclude(train_loss=None).values_list("step", "train_loss"))
    assert [s for s, _ in final] == [s for s, _ in stored] == list(range(1, 151))
    assert all(abs(a[1] - b) < 1e-9 for a, (_, b) in zip(final, stored, strict=True))
    page.get_by_role("link", name="Models", exact=True).click()
    assert page.get_by_test_id("models").get_by_text(job.name).is_visible()
    page.screenshot(path=str(ARTIFACTS / "models-page.png"), full_page=True)
