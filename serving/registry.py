"""Which models a user may call, and where their weights are.

Model ids: `mf-<job id>` for a fine-tuned adapter (a succeeded training job),
`base-<id>` for a base model. Unknown and forbidden ids are the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from training.models import BaseModel
from training.services import visible_jobs


class ModelNotFound(LookupError):
    def __init__(self, model_id: str):
        super().__init__(f"The model `{model_id}` does not exist or you do not have access to it.")
        self.model_id = model_id


@dataclass(frozen=True)
class ModelRef:
    id: str
    name: str
    base_source: str
    adapter_path: str | None
    owner: str
    created: int

    def as_dict(self) -> dict:
        return {"id": self.id, "base": self.base_source, "adapter": self.adapter_path}


def job_id(model_id: str) -> int | None:
    """The training job behind `mf-<job id>`; None for a base model or anything else."""
    prefix, _, number = str(model_id).partition("-")
    return int(number) if prefix == "mf" and number.isdigit() else None


def usable_models(user) -> list[ModelRef]:
    if user is None or not user.is_authenticated:
        return []
    refs = [
        ModelRef(
            f"mf-{j.pk}", j.name, j.base_model.source, j.adapter_dir, j.owner.username, int(j.created_at.timestamp())
        )
        for j in visible_jobs(user).filter(status="succeeded").exclude(adapter_dir="").order_by("-finished_at")
    ]
    refs += [
        ModelRef(f"base-{b.pk}", b.name, b.source, None, "modelfactory", int(b.created_at.timestamp()))
        for b in BaseModel.objects.filter(enabled=True)
    ]
    return refs


def resolve(user, model_id: str) -> ModelRef:
    if not isinstance(model_id, str) or len(model_id) > 100:
        raise ModelNotFound(str(model_id)[:100])
    prefix, _, number = model_id.partition("-")
    if not number.isdigit() or prefix not in ("mf", "base") or user is None or not user.is_authenticated:
        raise ModelNotFound(model_id)
    if prefix == "mf":
        job = visible_jobs(user).filter(pk=int(number), status="succeeded").exclude(adapter_dir="").first()
        if job is None:
            raise ModelNotFound(model_id)
        return ModelRef(model_id, job.name, job.base_model.source, job.adapter_dir, job.owner.username,
                        int(job.created_at.timestamp()))  # fmt: skip
    base = BaseModel.objects.filter(pk=int(number), enabled=True).first()
    if base is None:
        raise ModelNotFound(model_id)
    return ModelRef(model_id, base.name, base.source, None, "modelfactory", int(base.created_at.timestamp()))
