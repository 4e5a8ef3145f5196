"""Merged export: adapter + base → full weights and tokenizer in a zip, as a background job."""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path

from django.conf import settings
from django.db import transaction

from modelfactory.jobs import JobStatus
from serving.models import MergedExport
from serving.registry import ModelNotFound, resolve


def request_merge(user, model_id: str) -> MergedExport:
    """The running or finished merge of this model for this user, or a new one queued."""
    ref = resolve(user, model_id)
    if not ref.adapter_path:
        raise ModelNotFound(model_id)
    existing = MergedExport.objects.filter(owner=user, model_id=model_id).exclude(status=JobStatus.FAILED).first()
    if existing:
        return existing
    job = MergedExport.objects.create(owner=user, model_id=model_id)
    from serving.tasks import merge_export

    transaction.on_commit(lambda: merge_export.apply_async((job.pk,), queue="default"))
    return job


def run_merge(export_id: int) -> str:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    job = MergedExport.objects.select_related("owner").get(pk=export_id)
    if not job.claim():
        return "not claimed"
    try:
        ref = resolve(job.owner, job.model_id)
    except ModelNotFound:
        job.finish(JobStatus.FAILED, "The model no longer exists or is no longer yours.")
        return JobStatus.FAILED
    out = Path(settings.MEDIA_ROOT) / "exports" / f"{job.model_id}-merged-{job.pk}.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        model = AutoModelForCausalLM.from_pretrained(ref.base_source, dtype=torch.float32)
        merged = PeftModel.from_pretrained(model, ref.adapter_path).merge_and_unload()
        merged.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(ref.base_source).save_pretrained(tmp)
        card = Path(ref.adapter_path) / "README.md"
        if card.exists():
            shutil.copy(card, Path(tmp) / "README.md")
        partial = out.with_suffix(".part")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(Path(tmp).iterdir()):
                archive.write(path, path.name)
        partial.replace(out)  # never hand out a half-written zip
    MergedExport.objects.filter(pk=job.pk).update(archive=str(out))
    job.finish(JobStatus.SUCCEEDED, f"Merged weights ready ({out.stat().st_size / 1e6:.1f} MB).")
    return JobStatus.SUCCEEDED
