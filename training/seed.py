"""The built-in tiny base model: generated locally so the whole flow runs offline on a CPU."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from datanets.demo_data import demo_records
from training.models import BaseModel

TINY_NAME = "Tiny Llama (built-in, 2 layers)"


def seed_base_model() -> BaseModel:
    folder = Path(settings.VAR_DIR) / "models" / "tiny-llama"
    if not (folder / "config.json").exists() or not (folder / "model.safetensors").exists():
        from training.engine.tiny import build_tiny_model, record_texts

        build_tiny_model(folder, record_texts("instruction", demo_records()), hidden=64, layers=2)
    import json

    config = json.loads((folder / "config.json").read_text())
    hidden, layers, vocab = config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]
    params = vocab * hidden + layers * (4 * hidden * hidden + 3 * hidden * config["intermediate_size"])
    model, _ = BaseModel.objects.update_or_create(
        source=str(folder),
        defaults={
            "name": TINY_NAME, "architecture": config["model_type"], "parameter_count": params,
            "context_length": config["max_position_embeddings"], "licence": "CC0-1.0 (random weights)",
            "methods": ["lora", "dora", "qlora"], "builtin": True, "enabled": True,
        },
    )  # fmt: skip
    return model
