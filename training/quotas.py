"""Fair share for training: how many jobs one person may have waiting or running at once, how much one
job may train (tokens seen) and how much training time one person may use per 24 hours (limits from
accounts.quotas: settings, or staff's choice for that person); and which queued job runs next.

Training time is counted from each job's latest start to its end (or now, while it runs), over a
rolling 24 hours. The queue runs the job of the person with the fewest jobs running, then the least
training time in the last 24 hours, then the oldest: one person's ten queued jobs do not hold back
another's first."""

from __future__ import annotations

import math
from collections import Counter

from django.db.models import Q
from django.utils import timezone

from accounts import quotas
from accounts.quotas import Refusal
from core.jobs import JobStatus
from training.engine.config import FinetuneConfig
from training.models import TrainingJob

RETRY_AFTER_SECONDS = 60  # a job slot frees when one ends: ask again in a minute
ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)


def planned_steps(cfg: FinetuneConfig, records: int) -> int:
    """Optimiser steps the run will take on `records` accepted records."""
    return cfg.max_steps or math.ceil(cfg.steps_per_pass(records) * cfg.epochs)


def planned_tokens(cfg: FinetuneConfig, records: int) -> int:
    """The most tokens the run may read. A run of passes reads each record at most once a pass, at most
    max_seq_len tokens each; a run of max_steps reads at most the steps × what one step may read on every
    process of every host: batch_size longest examples, or with batch_tokens that budget (a lone longer
    example, up to max_seq_len, is a batch of its own)."""
    if not cfg.max_steps:
        return math.ceil(records * cfg.epochs) * cfg.max_seq_len
    per_batch = max(cfg.batch_tokens, cfg.max_seq_len) if cfg.batch_tokens else cfg.batch_size * cfg.max_seq_len
    return cfg.max_steps * per_batch * cfg.grad_accum * cfg.processes * cfg.hosts


def training_spans(owner_id, now=None) -> list[tuple]:
    """(start, end) of this person's training over the last 24 hours; a running job ends now."""
    now = now or timezone.now()
    since = now - quotas.DAY
    jobs = TrainingJob.objects.filter(owner_id=owner_id, started_at__isnull=False).filter(
        Q(status=JobStatus.RUNNING) | Q(finished_at__gte=since)
    )
    spans = []
    for started, finished, status in jobs.values_list("started_at", "finished_at", "status"):
        end = now if status == JobStatus.RUNNING or finished is None else finished
        if end > since:
            spans.append((max(started, since), end))
    return spans


def training_seconds(owner_id, now=None) -> float:
    return sum((end - start).total_seconds() for start, end in training_spans(owner_id, now))


def refusal(user, cfg: FinetuneConfig, records: int) -> Refusal | None:
    most = quotas.limit(user, "TRAINING_MAX_ACTIVE_JOBS")
    active = TrainingJob.objects.filter(owner=user, status__in=ACTIVE).count() if most is not None else 0
    if most is not None and active >= most:
        return Refusal(
            f"You have {active} training job{'s' if active != 1 else ''} waiting or running, the most one person "
            f"may have at a time ({most}). Start this one when one of them ends, or cancel one.",
            None, 429, RETRY_AFTER_SECONDS,
        )  # fmt: skip
    most = quotas.limit(user, "TRAINING_GPU_SECONDS_PER_DAY")
    if most is not None:
        now = timezone.now()
        spans = training_spans(user.pk, now)
        used = sum((end - start).total_seconds() for start, end in spans)
        if used >= most:
            wait = quotas.frees_after(spans, now, most)
            return Refusal(
                f"You have used {_hours(used)} of training in the last 24 hours, the most one person may use "
                f"({_hours(most)}). More frees {quotas.later(wait)}.",
                None, 429, wait,
            )  # fmt: skip
    tokens, most = planned_tokens(cfg, records), quotas.limit(user, "TRAINING_MAX_JOB_TOKENS")
    if most is not None and tokens > most:
        return Refusal(
            f"These settings would train on up to {tokens:,} tokens; one job may train on at most {most:,}. "
            "Lower max steps, epochs, batch size, gradient accumulation or sequence length.",
            "max_steps" if cfg.max_steps else "epochs", 400,
        )  # fmt: skip
    return None


def _hours(seconds: float) -> str:
    if seconds < 5400:
        return f"{round(seconds / 60)} minutes"
    return f"{seconds / 3600:.1f}".removesuffix(".0") + " hours"


def fair_order(queued: list[TrainingJob]) -> list[TrainingJob]:
    """Queued jobs in the order they should run: fewest running jobs of their owner, then the owner's
    least training time in the last 24 hours, then the oldest."""
    owners = {job.owner_id for job in queued}
    running = Counter(
        TrainingJob.objects.filter(status=JobStatus.RUNNING, owner_id__in=owners).values_list("owner_id", flat=True)
    )
    now = timezone.now()
    used = {owner: training_seconds(owner, now) for owner in owners}
    return sorted(queued, key=lambda job: (running[job.owner_id], used[job.owner_id], job.created_at, job.pk))


def usage(user) -> dict:
    """What the training form shows: this person's limits and what they use of them now."""
    limits = {name: quotas.limit(user, name) for name in ("TRAINING_MAX_ACTIVE_JOBS", "TRAINING_GPU_SECONDS_PER_DAY")}
    active = TrainingJob.objects.filter(owner=user, status__in=ACTIVE).count()
    used = training_seconds(user.pk)
    if limits["TRAINING_MAX_ACTIVE_JOBS"] is None:
        return {"text": "", "active": active, "seconds_used": round(used)}
    most_jobs, most_seconds = limits["TRAINING_MAX_ACTIVE_JOBS"], limits["TRAINING_GPU_SECONDS_PER_DAY"]
    text = (
        f"You may have {most_jobs} job{'s' if most_jobs != 1 else ''} waiting or running at once (now {active}) "
        f"and use {_hours(most_seconds)} of training per 24 hours (used {_hours(used)})."
    )
    return {"text": text, "active": active, "seconds_used": round(used), "limits": limits}
