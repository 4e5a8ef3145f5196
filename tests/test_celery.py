"""Celery: a real worker process against real Redis, and jobs that claim themselves once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import SiweNonce
from accounts.tasks import purge_expired_nonces
from core.jobs import JobStatus
from modelfactory.celery import app
from tests.helpers import wait_until
from tests.testapp.models import SampleJob
from tests.testapp.tasks import run_sample_job


def test_the_app_is_configured_for_safe_delivery():
    conf = app.conf
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert {q.name for q in conf.task_queues} == {"default", "gpu", "attribution"}


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_a_task_to_the_end(celery_worker_process):
    SiweNonce.objects.create(nonce="old-nonce-1", expires_at=timezone.now() - timedelta(hours=1))
    SiweNonce.objects.create(nonce="fresh-nonce", expires_at=timezone.now() + timedelta(hours=1))
    result = purge_expired_nonces.apply_async(queue="default")
    assert result.get(timeout=60) == 1
    assert list(SiweNonce.objects.values_list("nonce", flat=True)) == ["fresh-nonce"]


@pytest.mark.django_db(transaction=True)
def test_a_job_delivered_twice_runs_once(celery_worker_process):
    job = SampleJob.objects.create(payload="x")
    first = run_sample_job.apply_async((job.pk,), queue="gpu")
    second = run_sample_job.apply_async((job.pk,), queue="gpu")
    assert {first.get(timeout=60), second.get(timeout=60)} == {"done", "not claimed"}
    job.refresh_from_db()
    assert (job.status, job.runs, job.attempts) == (JobStatus.SUCCEEDED, 1, 1)


@pytest.mark.django_db(transaction=True)
def test_a_failing_job_task_records_the_failure_on_the_row(celery_worker_process):
    job = SampleJob.objects.create()
    result = run_sample_job.apply_async((job.pk, True), queue="gpu")
    with pytest.raises(RuntimeError):
        result.get(timeout=60, propagate=True)
    # on_failure runs just after the result is stored: wait for the row, not for a clock.
    wait_until(lambda: SampleJob.objects.get(pk=job.pk).is_final)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.message == "RuntimeError: the sample job was told to fail"
    assert job.finished_at is not None


@pytest.mark.django_db
def test_claim_finish_and_cancel_move_only_from_the_right_states():
    job = SampleJob.objects.create()
    assert job.claim() and not job.claim()
    assert job.finish(JobStatus.SUCCEEDED, "ok") and not job.finish(JobStatus.FAILED, "late")
    assert job.status == JobStatus.SUCCEEDED and job.message == "ok"
    queued = SampleJob.objects.create()
    assert queued.request_cancel() and queued.status == JobStatus.CANCELLED and not queued.claim()
    running = SampleJob.objects.create()
    running.claim()
    assert running.request_cancel() and running.status == JobStatus.RUNNING and running.cancel_requested
    with pytest.raises(ValueError):
        running.finish(JobStatus.RUNNING)
