"""Training workflows: start a job (pinning Datanet versions), run it on a worker,
record every metric point, cancel, estimate. Pages, API and the task call these."""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from core import live
from core.jobs import JobStatus
from core.queue import enqueue
from datanets.access import trainable_by
from datanets.models import Contribution
from training import hosts, quotas, words
from training.engine import config as engine_config
from training.engine.config import ConfigError, FinetuneConfig
from training.models import BaseModel, MetricPoint, TrainingDataset, TrainingJob
from training.signals import job_succeeded, model_deleted

LOG_LINES = 60


class TrainingError(ValueError):
    """A refusal with a message for people; `field` names the form field when there is one."""

    def __init__(self, message: str, field: str | None = None, status: int = 400, retry_after: int | None = None):
        super().__init__(message)
        self.field, self.status, self.retry_after = field, status, retry_after


def job_group(job_id: int) -> str:
    return f"training.job.{job_id}"


def visible_jobs(user):
    if user is None or not user.is_authenticated:
        return TrainingJob.objects.none()
    qs = TrainingJob.objects.select_related("base_model", "owner")
    return qs if user.is_superuser else qs.filter(owner=user)


def lost_access(job: TrainingJob, only_blocking: bool = True) -> list:
    """The pinned Datanets the job's owner may no longer train on; with only_blocking, just those
    whose owner blocks models of people who lose access (the default)."""
    pins = job.datasets.exclude(datanet__in=trainable_by(job.owner)).select_related("datanet")  # one query
    if only_blocking:
        pins = pins.filter(datanet__models_after_removal="block")
    return [p.datanet for p in pins.order_by("pk")]


def compare_ids(user, job: TrainingJob, others: int = 3) -> str:
    """The job and the viewer's latest other finished runs, as the comparison page's ?jobs= value."""
    rest = visible_jobs(user).filter(status=JobStatus.SUCCEEDED).exclude(pk=job.pk).order_by("-finished_at")
    return ",".join(str(pk) for pk in [job.pk, *rest.values_list("pk", flat=True)[:others]])


# --- Starting -------------------------------------------------------------------------------


def local_folder_problem(base_model: BaseModel) -> str | None:
    """For a local folder: what is missing for from_pretrained (told without the server path); None if fine."""
    path = Path(base_model.source)
    if not base_model.is_local:
        return None  # a Hugging Face id, resolved by the worker
    if not (path / "config.json").is_file():
        return f"The files of “{base_model.name}” are missing on this server; ask an administrator to check it."
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        return f"The weights of “{base_model.name}” are missing on this server; ask an administrator to check it."
    return None


def check_start(user, base_model: BaseModel, datanets, cfg: FinetuneConfig) -> list:
    """Every reason a job cannot start, as TrainingError; returns the versions to pin."""
    if not base_model.enabled:
        raise TrainingError("This base model is disabled.", "base_model")
    if cfg.base_model != base_model.source:
        raise TrainingError(f"These settings were made for another base model than {base_model}.", "base_model")
    problem = local_folder_problem(base_model)
    if problem:
        raise TrainingError(problem, "base_model")
    if cfg.method not in (base_model.methods or ["lora"]):
        raise TrainingError(f"{base_model} does not support {cfg.method}.", "method")
    if cfg.method == "qlora" and not settings.TRAINING_CUDA_WORKERS:
        raise TrainingError("QLoRA needs a CUDA GPU worker; this installation has none. Choose LoRA.", "method")
    if hosts.problem(cfg):
        raise TrainingError(*hosts.problem(cfg))
    if cfg.max_seq_len > base_model.context_length:
        raise TrainingError(f"At most {base_model.context_length} tokens for {base_model}.", "max_seq_len")
    if not datanets:
        raise TrainingError("Choose at least one Datanet.", "datanets")
    allowed = set(trainable_by(user).values_list("pk", flat=True))
    pins = []
    for datanet in datanets:
        if datanet.pk not in allowed:
            raise TrainingError(f"You may not train on “{datanet.name}”.", "datanets", 403)
        if datanet.schema != cfg.schema:
            raise TrainingError(f"“{datanet.name}” holds {datanet.schema} records; mix only one schema.", "datanets")
        version = datanet.current_version
        if version is None or version.size == 0:
            raise TrainingError(f"“{datanet.name}” has no accepted records yet.", "datanets")
        pins.append((datanet, version))
    over = quotas.refusal(user, cfg, sum(v.size for _, v in pins))
    if over:
        raise TrainingError(over.message, over.field, over.status, over.retry_after)
    return pins


def start_job(user, *, name: str, base_model: BaseModel, datanets, cfg: FinetuneConfig, preset: str, request_key: str):
    """Create the job and queue it on the gpu queue; the same request_key returns the same job.

    `cfg` is the config the form or API built (config_from) and is stored as is."""
    existing = TrainingJob.objects.filter(owner=user, request_key=request_key).first()
    if existing:
        return existing
    pins = check_start(user, base_model, datanets, cfg)
    try:
        with transaction.atomic():
            job = TrainingJob.objects.create(
                owner=user, name=name[:120] or f"{base_model.name} fine-tune", base_model=base_model, preset=preset,
                config=cfg.to_dict(), request_key=request_key, record_count=sum(v.size for _, v in pins),
                # A folder of its own, kept across takeovers: resume must find this job's checkpoints only.
                output_dir=str(Path(settings.MEDIA_ROOT) / "training" / uuid.uuid4().hex),
            )  # fmt: skip
            for datanet, version in pins:
                TrainingDataset.objects.create(
                    job=job, datanet=datanet, version=version, size=version.size, root=version.root
                )
            enqueue(job, "training.run_training")
    except IntegrityError:  # the same submission raced itself
        raced = TrainingJob.objects.filter(owner=user, request_key=request_key).first()
        if raced is None:
            raise TrainingError("The job could not be recorded; start it again.", None, 409) from None
        return raced
    return job


def config_from(preset: str, overrides: dict, base_model: BaseModel | None, datanets=()) -> FinetuneConfig:
    """The job's one FinetuneConfig: preset (for the base model's size and the Datanets' accepted
    records), then overrides (with the schema), then the base model's source."""
    records = sum(d.current_version.size for d in datanets if d.current_version is not None)
    try:
        return engine_config.config_from(
            preset, overrides, parameter_count=base_model.parameter_count if base_model else None, records=records,
            base_model=base_model.source if base_model else "unset",
        )  # fmt: skip
    except ConfigError as exc:
        raise TrainingError(exc.message, exc.field) from None


def estimate(cfg: FinetuneConfig, base_model: BaseModel, records: int) -> dict:
    """Rough memory and time before starting (shown next to the form), on the device the worker will use."""
    params = base_model.parameter_count or 1
    weight_bytes = params * (0.55 if cfg.method == "qlora" else 2)  # nf4 with double quant ≈ 4.4 bits
    lora_params = params * 0.004 * cfg.rank / 16  # all-linear adapters, measured order of magnitude
    optimiser = lora_params * 16  # fp32 weights, grads and two Adam moments
    hidden = max(int((params / 12) ** 0.5 / 4), 64)
    activations = cfg.batch_size * cfg.max_seq_len * hidden * 34 * (0.3 if cfg.gradient_checkpointing else 1)
    gpu_gb = (weight_bytes + optimiser + activations) / 1e9 * 1.2
    tokens = records * min(cfg.max_seq_len, 200) * (cfg.epochs if not cfg.max_steps else 1)
    if cfg.max_steps:
        tokens = cfg.max_steps * cfg.batch_size * cfg.grad_accum * min(cfg.max_seq_len, 200)
    tokens_per_second = 3e12 / (6 * params) if settings.TRAINING_CUDA_WORKERS else 2e10 / (6 * params)
    seconds = tokens / tokens_per_second
    device = "GPU" if settings.TRAINING_CUDA_WORKERS else "CPU"
    return {
        "passes": words.number(cfg.epochs, None) if not cfg.max_steps else "",
        "steps": quotas.planned_steps(cfg, records),
        "device": device, "memory_gb": round(gpu_gb, 1), "minutes": round(seconds / 60), "memory": words.memory(gpu_gb),
        "duration": "under a minute" if seconds < 60 else words.duration(seconds),
    }  # fmt: skip


# --- Running (inside the worker) ---------------------------------------------------------------


def worker_name() -> str:
    """host:pid of this worker process, stored on the job it runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _stale(job: TrainingJob) -> bool:
    """A RUNNING job whose worker is gone: dead pid on this host, or no heartbeat for a lease."""
    host, _, pid = job.worker.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
    lease = timedelta(seconds=settings.TRAINING_LEASE_SECONDS)
    return job.heartbeat_at is None or timezone.now() - job.heartbeat_at > lease


def claim(job: TrainingJob) -> bool:
    """Take a queued job, or take over a running one whose worker died; never run it twice."""
    if job.claim():
        TrainingJob.objects.filter(pk=job.pk).update(worker=worker_name(), heartbeat_at=timezone.now())
        return True
    job.refresh_from_db()
    if job.status == JobStatus.RUNNING and _stale(job):
        taken = TrainingJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING, worker=job.worker).update(
            worker=worker_name(), heartbeat_at=timezone.now(), attempts=F("attempts") + 1
        )
        return taken == 1
    return False


def next_job(job_id: int) -> TrainingJob | None:
    """The job a queue message runs. Its own job when a dead worker left it running (taken over);
    otherwise the fairest queued job (quotas.fair_order), which may be another person's: every queued
    job has a message of its own, so each message runs one job and none is left behind."""
    job = TrainingJob.objects.select_related("owner", "base_model").filter(pk=job_id).first()
    if job is not None and job.status == JobStatus.RUNNING:
        if claim(job):
            job.refresh_from_db()
            return job
        append_log(job, "a second start of this job was ignored: it is already running")
        return None
    queued = TrainingJob.objects.filter(status=JobStatus.QUEUED).select_related("owner", "base_model")
    queued = queued.order_by("created_at")[:500]  # the oldest 500 are enough to be fair among
    for candidate in quotas.fair_order(list(queued)):
        if claim(candidate):
            candidate.refresh_from_db()
            return candidate
    return None


def requeue_stale_jobs() -> list[int]:
    """RUNNING jobs whose worker is gone (a dead pid on this host, or no heartbeat for a lease) go back
    to the queue, each once however many workers sweep at the same time; the next run resumes from its
    last complete checkpoint. Every worker calls this at start and every TRAINING_SWEEP_SECONDS."""
    requeued = []
    for job in TrainingJob.objects.filter(status=JobStatus.RUNNING):
        if not _stale(job):
            continue
        if _requeue(job, "its worker stopped; queued again, it resumes from its last checkpoint"):
            requeued.append(job.pk)
    return requeued


def _requeue(job: TrainingJob, why: str) -> bool:
    """Put a RUNNING job back in the queue with a message of its own, once (however many try at once)."""
    with transaction.atomic():
        moved = TrainingJob.objects.filter(
            pk=job.pk, status=JobStatus.RUNNING, worker=job.worker, heartbeat_at=job.heartbeat_at
        ).update(status=JobStatus.QUEUED, worker="", heartbeat_at=None)
        if moved:
            enqueue(job, "training.run_training")
    if moved:
        append_log(job, why)
        _send(job.pk, {"type": "status", "status": JobStatus.QUEUED, "message": ""})
    return bool(moved)


def pinned_records(job: TrainingJob):
    """(contribution id, record) for every record the job trains on, in training order."""
    for pin in job.datasets.order_by("pk"):
        rows = Contribution.objects.filter(datanet=pin.datanet, status="accepted", log_index__lt=pin.size)
        yield from rows.order_by("log_index").values_list("pk", "content").iterator()


def records_for(job: TrainingJob):
    return (content for _, content in pinned_records(job))


def _send(job_id: int, message: dict) -> None:
    live.send(job_group(job_id), message)


def record_point(job: TrainingJob, point: dict) -> None:
    """Store one point (merging train and eval values of a step) and push it to the page."""
    values = {k: point.get(k) for k in MetricPoint.FIELDS if point.get(k) is not None}
    MetricPoint.objects.update_or_create(job=job, step=point["step"], defaults=values)
    TrainingJob.objects.filter(pk=job.pk).update(
        progress=point.get("progress") or 0, eta_seconds=point.get("eta_seconds"), last_step=point["step"],
        heartbeat_at=timezone.now(),
    )  # fmt: skip
    _send(job.pk, {"type": "point", "point": {"step": point["step"], **values}})


def append_log(job: TrainingJob, line: str) -> None:
    stamped = f"{timezone.now():%H:%M:%S} {line}"
    job.refresh_from_db(fields=["log_tail"])
    lines = (job.log_tail.splitlines() + [stamped])[-LOG_LINES:]
    TrainingJob.objects.filter(pk=job.pk).update(log_tail="\n".join(lines))
    _send(job.pk, {"type": "log", "line": stamped})


def _finish(job: TrainingJob, status: str, message: str, **fields) -> None:
    if fields:
        TrainingJob.objects.filter(pk=job.pk).update(**fields)
    job.finish(status, message)
    append_log(job, message)
    _send(job.pk, {"type": "status", "status": status, "message": message})
    level = {"succeeded": "success", "failed": "error"}.get(status, "info")
    live.notify_user(job.owner_id, f"Training “{job.name}”: {message}", level)
    if status == JobStatus.SUCCEEDED:
        job.refresh_from_db()
        job_succeeded.send(sender=TrainingJob, job=job)


def run(job_id: int) -> str:
    """Run a claimed job through the engine and record how it ended."""
    from training.engine import EngineError, distributed

    job = next_job(job_id)
    if job is None:
        return "not claimed"
    lost = lost_access(job, only_blocking=False)  # access may have been removed while the job waited
    if lost:
        _finish(job, JobStatus.FAILED, f"You no longer have access to “{lost[0].name}”, so this job did not start. "
                "Ask its owner for access, then start the job again.")  # fmt: skip
        return JobStatus.FAILED
    _send(job.pk, {"type": "status", "status": job.status, "message": ""})
    out_dir = Path(job.output_dir)
    cfg = job.finetune_config()
    card = {
        "name": job.name,
        "base_name": job.base_model.name,
        "base_hub_id": job.base_model.hub_id,
        "datanets": [
            {"name": d.datanet.name, "version": d.version.number, "size": d.size, "root": d.root}
            for d in job.datasets.select_related("datanet", "version")
        ],
    }
    append_log(job, f"started (attempt {job.attempts})")  # the worker's host:pid is in job.worker, for operators
    try:
        result = hosts.engine_call(job, cfg)(
            cfg, records_for(job), out_dir,
            on_progress=lambda p: record_point(job, p),
            should_cancel=lambda: TrainingJob.objects.filter(pk=job.pk, cancel_requested=True).exists(),
            card=card, on_log_line=lambda line: append_log(job, line),
        )  # fmt: skip
    except distributed.RankFailed as exc:
        return _after_rank_failed(job, exc)
    except EngineError as exc:
        _finish(job, JobStatus.FAILED, _plain(str(exc), job))
        return JobStatus.FAILED
    if result.status == "cancelled":
        _finish(job, JobStatus.CANCELLED, f"Cancelled at step {result.steps}.")
        return JobStatus.CANCELLED
    _finish(
        job, JobStatus.SUCCEEDED, f"Finished: {result.steps} steps.",
        adapter_dir=str(result.adapter_dir), final_metrics=result.metrics, progress=1.0, eta_seconds=0,
    )  # fmt: skip
    return JobStatus.SUCCEEDED


MAX_ATTEMPTS = 3  # runs of a multi-device job whose processes keep dying


def _after_rank_failed(job: TrainingJob, exc: Exception) -> str:
    """One of a multi-device job's processes died: queue it again (it resumes from its last complete
    checkpoint), or fail it after MAX_ATTEMPTS runs."""
    job.refresh_from_db()
    if job.attempts >= MAX_ATTEMPTS:
        _finish(job, JobStatus.FAILED, f"A training process stopped {job.attempts} times; the job gave up. {exc}")
        return JobStatus.FAILED
    _requeue(job, "one of its training processes stopped; queued again, it resumes from its last checkpoint")
    return JobStatus.QUEUED


def _plain(message: str, job: TrainingJob) -> str:
    """An engine message as people read it: the base model by name, not its folder on the server."""
    base = job.base_model
    return message.replace(repr(base.source), f"“{base.name}”").replace(base.source, f"“{base.name}”")


def cancel(user, job: TrainingJob) -> TrainingJob:
    if job.owner_id != user.pk and not user.is_superuser:
        raise TrainingError("Only the job's owner can cancel it.", status=403)
    if job.is_final:
        raise TrainingError(f"This job has already ended ({job.status_words.lower()}): there is nothing to cancel.",
                            status=409)  # fmt: skip
    job.request_cancel()
    if job.status == JobStatus.CANCELLED:
        _send(job.pk, {"type": "status", "status": job.status, "message": "Cancelled before it started."})
    return job


def delete_model(user, job: TrainingJob) -> None:
    """The owner takes their trained model out of service: no more chat, /v1 or export."""
    if job.owner_id != user.pk:
        raise TrainingError("Only the model's owner can delete it.", status=403)
    media = Path(settings.MEDIA_ROOT).resolve()
    # the job's own folders only (adapter, checkpoints): never a path outside the media root
    folders = [f for f in (job.output_dir, job.adapter_dir) if f and Path(f).resolve().is_relative_to(media)]
    if job.retire_model():
        for folder in folders:  # delete means delete
            shutil.rmtree(folder, ignore_errors=True)
        model_deleted.send(sender=TrainingJob, job=job, model_id=job.model_id)
