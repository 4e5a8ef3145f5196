"""Training job rows for page and API tests, as the worker leaves them."""

from __future__ import annotations

import uuid

from training import services
from training.models import TrainingJob


def finished_job(owner, base_model, datanet, tmp_path, **extra) -> TrainingJob:
    """A succeeded job with a (small, fake) adapter on disk, as the worker leaves it."""
    adapter = tmp_path / f"adapter-{uuid.uuid4().hex[:6]}"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    (adapter / "adapter_model.safetensors").write_bytes(b"\0" * 16)
    (adapter / "README.md").write_text("# Glossary tutor\n")
    cfg = services.config_from("quick", {"max_steps": 37, "schema": "instruction"}, base_model)
    metrics = {"train_loss": 2.31415, "steps": 37.0, "eval_loss": 2.5}
    values = {"name": "Glossary tutor", "adapter_dir": str(adapter), "status": "succeeded", "progress": 1.0,
              "eta_seconds": 0, "last_step": 37, "final_metrics": metrics, **extra}  # fmt: skip
    job = TrainingJob.objects.create(owner=owner, base_model=base_model, config=cfg.to_dict(),
                                     request_key=uuid.uuid4().hex, **values)  # fmt: skip
    version = datanet.current_version
    job.datasets.create(datanet=datanet, version=version, size=version.size, root=version.root)
    return job
