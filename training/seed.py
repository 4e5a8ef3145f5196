"""The built-in demo base model, pre-trained on this machine on the demo Datanet's records
(training/engine/demo_model.py), so the whole flow runs offline on a CPU and shows learning."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from django.conf import settings

from datanets.demo_data import demo_records
from training.base_models import inspect
from training.models import BaseModel

DEMO_NAME = "Demo Llama"
OLD_TINY_FOLDER = "tiny-llama"  # the random 2-layer model earlier versions seeded


def demo_folder() -> Path:
    return Path(settings.VAR_DIR) / "models" / "demo-llama"


def seed_base_model(say: Callable[[str], None] = lambda line: None) -> BaseModel:
    """Build the demo model once (cached under VAR_DIR) and register it; later calls reuse it."""
    from training.engine.demo_model import cached, ensure_demo_model

    folder, records = demo_folder(), demo_records()
    if cached(folder, records) is None:
        say(f"Building the demo base model: once, about 2 minutes on 2 CPU cores, then cached in {folder}")

        def progress(step, steps, loss, seconds):
            if step % 100 == 0 or step == steps:
                say(f"  demo model: step {step}/{steps}, loss {loss:.2f}, {seconds:.0f} s")

        ensure_demo_model(folder, records, progress)
    found = inspect(str(folder))  # the same check staff's base models get
    model, _ = BaseModel.objects.update_or_create(
        source=str(folder),
        defaults={
            "name": DEMO_NAME, "architecture": found.architecture, "parameter_count": found.parameter_count,
            "context_length": found.context_length, "licence": "CC0-1.0 (trained here on the CC0 demo glossary)",
            "methods": ["lora", "dora", "qlora"], "builtin": True, "enabled": True,
        },
    )  # fmt: skip
    BaseModel.objects.filter(builtin=True, source__endswith=f"/{OLD_TINY_FOLDER}").update(enabled=False)
    return model
