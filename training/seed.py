"""The built-in tiny base model: generated locally so the whole flow runs offline on a CPU."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from datanets.demo_data import demo_records
from training.base_models import inspect
from training.models import BaseModel

TINY_NAME = "Tiny demo Llama"


def seed_base_model() -> BaseModel:
    folder = Path(settings.VAR_DIR) / "models" / "tiny-llama"
    if not (folder / "config.json").exists() or not (folder / "model.safetensors").exists():
        from training.engine.tiny import build_tiny_model, record_texts

        build_tiny_model(folder, record_texts("instruction", demo_records()), hidden=64, layers=2)
    found = inspect(str(folder))  # the same check staff's base models get
    model, _ = BaseModel.objects.update_or_create(
        source=str(folder),
        defaults={
            "name": TINY_NAME, "architecture": found.architecture, "parameter_count": found.parameter_count,
            "context_length": found.context_length, "licence": "CC0-1.0 (random weights)",
            "methods": ["lora", "dora", "qlora"], "builtin": True, "enabled": True,
        },
    )  # fmt: skip
    return model
