"""Signals other apps listen to (attribution starts its run when a job succeeds)."""

from django.dispatch import Signal

job_succeeded = Signal()  # sender=TrainingJob, job=<TrainingJob>
