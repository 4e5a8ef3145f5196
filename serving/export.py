"""Merged export: adapter + base → full weights and tokenizer in a zip, as a background job."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from django.conf import settings

from core.jobs import JobStatus
from core.queue import enqueue
from serving.models import MergedExport
from serving.registry import ModelNotFound, ModelRef, resolve

ADAPTER_FILES = ("adapter_model.safetensors", "README.md")


def adapter_zip(ref: ModelRef) -> io.BytesIO:
    """adapter_config.json, adapter_model.safetensors and the model card, loadable with
    PeftModel.from_pretrained as is. The config names the base by its Hugging Face id (or its
    display name), never by a folder on this server."""
    folder = Path(ref.adapter_path)
    config = json.loads((folder / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = ref.base_hub_id or ref.base_name or ref.name
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("adapter_config.json", json.dumps(config, indent=2, sort_keys=True))
        for name in ADAPTER_FILES:
            if (folder / name).exists():
                archive.write(folder / name, name)
    buffer.seek(0)
    return buffer


def request_merge(user, model_id: str) -> MergedExport:
    """The running or finished merge of this model for this user, or a new one queued."""
    ref = resolve(user, model_id)
    if not ref.adapter_path:
        raise ModelNotFound(model_id)
    existing = MergedExport.objects.filter(owner=user, model_id=model_id).exclude(status=JobStatus.FAILED).first()
    if existing:
        return existing
    job = MergedExport.objects.create(owner=user, model_id=model_id)
    enqueue(job, "serving.merge_export")
    return job


def run_merge(export_id: int) -> str:
    from serving.engine.merge import merge_to_zip

    job = MergedExport.objects.select_related("owner").get(pk=export_id)
    if not job.claim():
        return "not claimed"
    try:
        ref = resolve(job.owner, job.model_id)
    except ModelNotFound:
        job.finish(JobStatus.FAILED, "The model no longer exists or is no longer yours.")
        return JobStatus.FAILED
    out = merge_to_zip(
        ref.base_source, ref.adapter_path, Path(settings.MEDIA_ROOT) / "exports" / f"{job.model_id}-merged-{job.pk}.zip"
    )
    MergedExport.objects.filter(pk=job.pk).update(archive=str(out))
    job.finish(JobStatus.SUCCEEDED, f"Merged weights ready ({out.stat().st_size / 1e6:.1f} MB).")
    return JobStatus.SUCCEEDED
