"""What attribution does when other apps' rows change: a new Datanet version is
anchored and its index synced; a succeeded training job gets an attribution run."""

from __future__ import annotations

import shutil

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from attribution import anchoring, indexing, services
from attribution.models import TrainingAttribution
from datanets.models import Datanet, DatanetVersion
from training.signals import job_succeeded, model_deleted


@receiver(post_save, sender=DatanetVersion, dispatch_uid="attribution.version_saved")
def version_saved(sender, instance: DatanetVersion, created: bool, raw: bool = False, **kwargs):
    if created and not raw:
        anchoring.anchor_version(instance)
        indexing.schedule_sync(instance.datanet_id)


@receiver(post_delete, sender=Datanet, dispatch_uid="attribution.datanet_deleted")
def datanet_deleted(sender, instance: Datanet, **kwargs):
    shutil.rmtree(indexing.index_folder(instance.pk), ignore_errors=True)


@receiver(job_succeeded, dispatch_uid="attribution.job_succeeded")
def job_finished(sender, job, **kwargs):
    services.start_training_attribution(job)


@receiver(model_deleted, dispatch_uid="attribution.model_deleted")
def model_deleted_files(sender, job, **kwargs):
    """The sketches and span index derived from a deleted model go; its scores stay (past rewards used them)."""
    for run in TrainingAttribution.objects.filter(job=job).exclude(folder=""):
        shutil.rmtree(run.folder, ignore_errors=True)
