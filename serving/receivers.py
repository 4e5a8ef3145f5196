"""What serving does when other apps' rows change: a deleted model's merged exports go too."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.dispatch import receiver

from serving.models import MergedExport
from training.signals import model_deleted


@receiver(model_deleted, dispatch_uid="serving.model_deleted")
def delete_exports(sender, job, model_id: str, **kwargs):
    for export in MergedExport.objects.filter(model_id=model_id):
        if export.archive and Path(export.archive).resolve().is_relative_to(Path(settings.MEDIA_ROOT).resolve()):
            Path(export.archive).unlink(missing_ok=True)
        export.delete()
