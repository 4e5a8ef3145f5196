from celery import shared_task

from core.jobs import JobTask
from serving import export


@shared_task(base=JobTask, job_model="serving.MergedExport", name="serving.merge_export")
def merge_export(export_id: int) -> str:
    """Merge an adapter into its base model and zip the result (full weights + tokenizer)."""
    return export.run_merge(export_id)
