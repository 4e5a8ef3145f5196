"""Data builders and model-row factories shared across test folders."""

from __future__ import annotations

import json
import uuid

from datanets.models import Datanet
from training.models import BaseModel, TrainingJob


def jsonl(rows: list[dict]) -> bytes:
    return "\n".join(json.dumps(r) for r in rows).encode()


def alpaca(n: int, start: int = 0) -> list[dict]:
    return [{"instruction": f"Question {i}?", "input": "", "output": f"Answer {i}."} for i in range(start, start + n)]


def datanet(owner, visibility="public", schema="instruction", slug="legal-qa", **extra) -> Datanet:
    return Datanet.objects.create(
        owner=owner, name=slug.replace("-", " ").title(), slug=slug, visibility=visibility, schema=schema,
        licence="CC-BY-4.0", **extra,
    )  # fmt: skip


def succeeded_job(owner, name: str, base_source: str, adapter_dir: str) -> TrainingJob:
    """A succeeded training job on a "Tiny" LoRA base model, with its adapter already on disk."""
    base = BaseModel.objects.create(name="Tiny", source=base_source, methods=["lora"], context_length=1024)
    return TrainingJob.objects.create(owner=owner, name=name, base_model=base, config={}, status="succeeded",
                                      request_key=uuid.uuid4().hex, adapter_dir=adapter_dir)  # fmt: skip
