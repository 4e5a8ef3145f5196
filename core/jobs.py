"""The abstract Job model shared by training, export and attribution jobs.

A job row is the record of truth; Celery messages only point at it. Status moves
by conditional UPDATE so that a redelivered message, a second worker or a retry
cannot start the same job twice (healthchecks' sendalerts does the same).
"""

from __future__ import annotations

import logging

from celery import Task
from django.apps import apps
from django.db import models
from django.utils import timezone

log = logging.getLogger(__name__)


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINAL_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class Job(models.Model):
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    message = models.TextField(blank=True, help_text="Last human-readable word on the job: why it failed, etc.")
    cancel_requested = models.BooleanField(default=False)
    celery_task_id = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="How many times a worker claimed this job.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
        ordering = ["-created_at"]

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    def _move(self, from_statuses, **fields) -> bool:
        fields["updated_at"] = timezone.now()
        changed = type(self)._default_manager.filter(pk=self.pk, status__in=from_statuses).update(**fields)
        self.refresh_from_db()
        return changed == 1

    def claim(self) -> bool:
        """QUEUED → RUNNING once. False means someone else has it, or it is over."""
        return self._move(
            [JobStatus.QUEUED],
            status=JobStatus.RUNNING,
            started_at=timezone.now(),
            attempts=models.F("attempts") + 1,
        )

    def finish(self, status: str, message: str = "") -> bool:
        """RUNNING (or QUEUED, for jobs that fail before starting) → a final status, once."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"{status!r} is not a final status")
        return self._move(
            [JobStatus.QUEUED, JobStatus.RUNNING], status=status, message=message, finished_at=timezone.now()
        )

    def request_cancel(self) -> bool:
        """Ask a running job to stop at its next check; cancel a queued one at once."""
        if self._move(
            [JobStatus.QUEUED], status=JobStatus.CANCELLED, finished_at=timezone.now(), cancel_requested=True
        ):
            return True
        return self._move([JobStatus.RUNNING], cancel_requested=True)


class JobTask(Task):
    """Base for tasks whose first argument is a job id of `job_model` ("app_label.Model").

    If the task body raises, the job ends FAILED with the error's message instead of
    staying RUNNING forever (saleor's ExportTask.on_failure does the same).
    """

    job_model: str = ""

    def job_class(self):
        return apps.get_model(self.job_model)

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        if not args:
            return
        job = self.job_class()._default_manager.filter(pk=args[0]).first()
        if job is not None and not job.is_final:
            text = str(exc) or exc.__class__.__name__
            job.finish(JobStatus.FAILED, f"{exc.__class__.__name__}: {text}"[:2000])
            log.warning("job %s %s failed: %s", self.job_model, args[0], text)
