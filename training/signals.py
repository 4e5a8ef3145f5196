"""Signals other apps listen to (attribution starts its run when a job succeeds; serving and
attribution delete what they derived from a model when its owner deletes it)."""

from django.dispatch import Signal

job_succeeded = Signal()  # sender=TrainingJob, job=<TrainingJob>
model_deleted = Signal()  # sender=TrainingJob, job=<TrainingJob>, model_id=<str>; its own files are gone
