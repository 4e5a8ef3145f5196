"""Fair share for training: training time per person per 24 hours (refused with 429, Retry-After and a
sentence, in the API and the form; staff raise it per person), and the queue runs the fairest job next
(fewest running, then least training time today, then oldest), not only the first come."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import QuotaOverride
from tests.training.test_jobs import form_data
from training import quotas, services
from training.models import TrainingJob

pytestmark = pytest.mark.django_db
BODY = {"datanets": ["glossary"], "preset": "quick"}


def job(owner, base_model, status="queued", *, minutes_ago=0, ran_minutes=0) -> TrainingJob:
    """A job row created `minutes_ago`, which (if it ran) trained for `ran_minutes` and ended then."""
    made = TrainingJob.objects.create(
        owner=owner, name="j", base_model=base_model, config={}, status=status, request_key=uuid.uuid4().hex
    )
    at = timezone.now() - timedelta(minutes=minutes_ago)
    fields = {"created_at": at}
    if ran_minutes:
        fields.update(started_at=at, finished_at=None if status == "running" else at + timedelta(minutes=ran_minutes))
    TrainingJob.objects.filter(pk=made.pk).update(**fields)
    made.refresh_from_db()
    return made


def test_training_time_per_day_is_limited_and_staff_can_raise_it(
    client, user, base_model, glossary, monkeypatch, settings
):
    monkeypatch.setattr("training.services.enqueue", lambda job, task: None)
    settings.TRAINING_GPU_SECONDS_PER_DAY = 3600
    job(user, base_model, "succeeded", minutes_ago=120, ran_minutes=61)  # 61 minutes, two hours ago
    api = APIClient()
    api.force_authenticate(user)
    refused = api.post("/api/v1/training/jobs/", {**BODY, "base_model": base_model.pk}, format="json")
    assert refused.status_code == 429, refused.content
    detail = refused.json()["detail"]
    assert "You have used 61 minutes of training in the last 24 hours" in detail and "(60 minutes)" in detail
    # it frees when a minute of the old run has left the window: 22 h 1 min from now
    assert int(refused["Retry-After"]) == pytest.approx(22 * 3600 + 60, abs=5)
    assert "More frees in about 22 hours" in detail
    client.force_login(user)
    page = client.get("/training/new/").content.decode()
    assert "use 60 minutes of training per 24 hours (used 61 minutes)" in page  # the form shows it
    posted = client.post("/training/new/", form_data(base_model, [glossary])).content.decode()
    assert "You have used 61 minutes of training" in posted
    QuotaOverride.objects.create(user=user, name="TRAINING_GPU_SECONDS_PER_DAY", value=4 * 3600)
    assert api.post("/api/v1/training/jobs/", {**BODY, "base_model": base_model.pk}, format="json").status_code == 201


def test_a_running_job_counts_until_now(user, base_model):
    job(user, base_model, "running", minutes_ago=30, ran_minutes=1)
    assert quotas.training_seconds(user.pk) == pytest.approx(1800, abs=5)


def test_the_queue_runs_the_fairest_job_not_the_oldest(user, other_user, make_user, base_model):
    a1 = job(user, base_model, minutes_ago=10)
    a2 = job(user, base_model, minutes_ago=9)
    b1 = job(other_user, base_model, minutes_ago=1)  # queued last, but its owner has nothing running
    job(user, base_model, "succeeded", minutes_ago=60, ran_minutes=30)
    assert [j.pk for j in quotas.fair_order([a1, a2, b1])] == [b1.pk, a1.pk, a2.pk]
    # a message for a1 runs b1: every queued job has its own message, so a1 runs on b1's
    assert services.next_job(a1.pk).pk == b1.pk
    b1.refresh_from_db()
    assert b1.status == "running" and b1.worker == services.worker_name()
    c1 = job(make_user("carol"), base_model, minutes_ago=0)
    # b1 runs: its owner now has one running; carol and the first person have none
    order = quotas.fair_order([a1, a2, c1])
    assert order[0].pk == c1.pk  # no training today beats the first person's 30 minutes
    assert services.next_job(a2.pk).pk == c1.pk
    assert services.next_job(a2.pk).pk == a1.pk
    assert services.next_job(a2.pk).pk == a2.pk
    assert services.next_job(a2.pk) is None  # a2 runs already and nothing is queued: this message starts nothing
