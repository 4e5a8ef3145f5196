"""Delete means delete: a model its owner deletes loses its adapter and checkpoints on disk, its
merged exports (rows and zips, so their download links die) and the attribution files derived
from it; only files under MEDIA_ROOT are ever removed."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from django.conf import settings

from attribution.models import TrainingAttribution
from serving.models import MergedExport
from tests.training.jobs import finished_job

pytestmark = pytest.mark.django_db


def test_deleting_a_model_deletes_its_files_and_exports(client, user, base_model, glossary, tmp_path):
    media = Path(settings.MEDIA_ROOT)
    out = media / "training" / uuid.uuid4().hex
    (out / "checkpoints" / "checkpoint-10").mkdir(parents=True)
    job = finished_job(user, base_model, glossary, out)  # its adapter folder is made inside `out`
    job.output_dir = str(out)
    job.save()
    archive = media / "exports" / f"{job.model_id}-merged-1.zip"
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.write_bytes(b"zip")
    merged = MergedExport.objects.create(owner=user, model_id=job.model_id, status="succeeded", archive=str(archive))
    run_folder = media / "attribution" / uuid.uuid4().hex
    run_folder.mkdir(parents=True)
    TrainingAttribution.objects.create(job=job, folder=str(run_folder), status="succeeded")
    outside = tmp_path / "not-ours"
    outside.mkdir()
    client.force_login(user)
    assert client.get(f"/api/v1/exports/{merged.pk}/download/").status_code == 200
    job.adapter_dir = str(outside)  # a path outside the media root is never removed, whatever the row says
    job.save()
    assert client.post(f"/models/{job.pk}/delete/").status_code == 302
    assert not out.exists() and not archive.exists() and not run_folder.exists() and outside.exists()
    assert not MergedExport.objects.filter(pk=merged.pk).exists()
    assert client.get(f"/api/v1/exports/{merged.pk}/download/").status_code == 404
    assert client.get(f"/chat/{job.model_id}/").status_code == 404
