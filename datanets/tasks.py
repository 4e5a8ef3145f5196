from pathlib import Path

from celery import shared_task
from django.conf import settings

from core.jobs import JobTask
from datanets.models import UploadBatch
from datanets.services import ingest


@shared_task(base=JobTask, job_model="datanets.UploadBatch", name="datanets.ingest_upload")
def ingest_upload(batch_id: int) -> str:
    """Parse and store a large upload saved to disk by start_upload()."""
    batch = UploadBatch.objects.select_related("datanet", "uploader").get(pk=batch_id)
    if not batch.claim():
        return "already claimed"
    path = Path(batch.stored_file)
    try:
        ingest(batch, path.read_bytes(), memory_mb=settings.DATANET_PARSE_MEMORY_MB)
    finally:
        path.unlink(missing_ok=True)
    return batch.status
