"""Which models a user may call, and where their weights are.

Model ids: `mf-<job id>` for a fine-tuned adapter (a succeeded training job),
`base-<id>` for a base model. Unknown and forbidden ids are the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from training.models import BaseModel, TrainingJob
from training.services import lost_access, visible_jobs


class ModelNotFound(LookupError):
    def __init__(self, model_id: str, message: str = ""):
        super().__init__(message or f"The model `{model_id}` does not exist or you do not have access to it.")
        self.model_id = model_id


class ModelBlocked(ModelNotFound):
    """A model whose trainer lost access to a Datanet it was trained on, whose owner blocks such models."""

    def __init__(self, model_id: str, user, job: TrainingJob, datanet):
        who = "You no longer have" if user == job.owner else "The person who trained it no longer has"
        super().__init__(model_id, f"{who} access to “{datanet.name}”, which this model was trained on, and that "
                         "Datanet's owner does not let models outlive access: it cannot be used for chat or export. "
                         "Ask the Datanet's owner for access again.")  # fmt: skip


@dataclass(frozen=True)
class ModelRef:
    id: str
    name: str
    base_source: str
    adapter_path: str | None
    owner: str
    created: int
    base_name: str = ""  # what people read; base_source is where the worker loads it from
    base_hub_id: str = ""  # the base model's Hugging Face id; empty for a folder on the server

    def as_dict(self) -> dict:
        return {"id": self.id, "base": self.base_source, "adapter": self.adapter_path}


def _job_ref(job: TrainingJob) -> ModelRef:
    base = job.base_model
    return ModelRef(job.model_id, job.name, base.source, job.adapter_dir, job.owner.username,
                    int(job.created_at.timestamp()), base.name, base.hub_id)  # fmt: skip


def _base_ref(base: BaseModel) -> ModelRef:
    return ModelRef(base.model_id, base.name, base.source, None, "modelfactory", int(base.created_at.timestamp()),
                    base.name, base.hub_id)  # fmt: skip


def _servable(user):
    return visible_jobs(user).filter(status="succeeded").exclude(adapter_dir="")


def own_models(user) -> list[ModelRef]:
    """The fine-tuned models this person trained (not others' they may see as staff), newest first."""
    if user is None or not user.is_authenticated:
        return []
    return [_job_ref(j) for j in _servable(user).filter(owner=user).order_by("-finished_at")]


def usable_models(user) -> list[ModelRef]:
    if user is None or not user.is_authenticated:
        return []
    refs = [_job_ref(j) for j in _servable(user).order_by("-finished_at")]
    return refs + [_base_ref(b) for b in BaseModel.objects.filter(enabled=True)]


def resolve(user, model_id: str) -> ModelRef:
    if not isinstance(model_id, str) or len(model_id) > 100:
        raise ModelNotFound(str(model_id)[:100])
    job_pk, base_pk = TrainingJob.pk_from_model_id(model_id), BaseModel.pk_from_model_id(model_id)
    if user is None or not user.is_authenticated or (job_pk is None and base_pk is None):
        raise ModelNotFound(model_id)
    if job_pk is not None:
        job = _servable(user).filter(pk=job_pk).first()
        if job is None:
            raise ModelNotFound(model_id)
        lost = lost_access(job)
        if lost:
            raise ModelBlocked(model_id, user, job, lost[0])
        return _job_ref(job)
    base = BaseModel.objects.filter(pk=base_pk, enabled=True).first()
    if base is None:
        raise ModelNotFound(model_id)
    return _base_ref(base)


def base_of(user, ref: ModelRef) -> ModelRef | None:
    """The base model an adapter was trained on, for side-by-side answers; None if it is gone."""
    base = BaseModel.objects.filter(source=ref.base_source, enabled=True).first()
    return _base_ref(base) if base and user is not None and user.is_authenticated else None
