"""Fair share for training: how many jobs one person may have waiting or running at once, and how much
one job may train (tokens seen). Staff are exempt. A refusal says which limit, and what to do."""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.conf import settings

from core.jobs import JobStatus
from training.engine.config import FinetuneConfig
from training.models import TrainingJob

RETRY_AFTER_SECONDS = 60  # a job slot frees when one ends: ask again in a minute


@dataclass(frozen=True)
class Refusal:
    message: str
    field: str | None
    status: int
    retry_after: int | None = None


def planned_steps(cfg: FinetuneConfig, records: int) -> int:
    """Optimiser steps the run will take on `records` accepted records."""
    return cfg.max_steps or math.ceil(cfg.steps_per_pass(records) * cfg.epochs)


def planned_tokens(cfg: FinetuneConfig, records: int) -> int:
    """The most tokens the run may read: steps × examples per step × the longest example."""
    return planned_steps(cfg, records) * cfg.batch_size * cfg.grad_accum * cfg.max_seq_len


def refusal(user, cfg: FinetuneConfig, records: int) -> Refusal | None:
    if user.is_staff:
        return None
    limit = settings.TRAINING_MAX_ACTIVE_JOBS
    active = TrainingJob.objects.filter(owner=user, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).count()
    if active >= limit:
        return Refusal(
            f"You have {active} training job{'s' if active != 1 else ''} waiting or running, the most one person "
            f"may have at a time ({limit}). Start this one when one of them ends, or cancel one.",
            None, 429, RETRY_AFTER_SECONDS,
        )  # fmt: skip
    tokens, most = planned_tokens(cfg, records), settings.TRAINING_MAX_JOB_TOKENS
    if tokens > most:
        return Refusal(
            f"These settings would train on up to {tokens:,} tokens; one job may train on at most {most:,}. "
            "Lower max steps, epochs, batch size, gradient accumulation or sequence length.",
            "max_steps" if cfg.max_steps else "epochs", 400,
        )  # fmt: skip
    return None
