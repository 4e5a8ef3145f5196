"""A concrete Job for testing the abstract Job model and JobTask (no migrations: synced)."""

from django.db import models

from core.jobs import Job


class SampleJob(Job):
    payload = models.CharField(max_length=100, blank=True)
    runs = models.PositiveIntegerField(default=0)
