"""One job across two processes (torchrun, gloo on CPU): the loss curve of the one-process run on the
same global batch, a cancel that stops every process at once, and kill -9 of one process on a real
Celery worker: the job is queued again and resumes from its last complete checkpoint."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.helpers import wait_until
from tests.training.test_worker_jobs import finished, start, steps_of
from training.engine import FinetuneConfig, run_finetune
from training.engine.distributed import launch
from training.models import TrainingJob


def cfg(base: str, **kw) -> FinetuneConfig:
    return FinetuneConfig.from_dict({"base_model": base, "schema": "instruction", "batch_size": 8, "max_seq_len": 96,
                                     "save_steps": 0, "logging_steps": 1, "eval_fraction": 0, "learning_rate": 1e-3,
                                     "max_steps": 6, "dropout": 0.0, **kw})  # fmt: skip


def losses(points: list[dict]) -> list[float]:
    return [p["train_loss"] for p in points if p["train_loss"] is not None]


def test_two_processes_follow_the_one_process_loss_curve_on_the_same_global_batch(tiny_base, records, tmp_path):
    one, two, lines = [], [], []
    run_finetune(cfg(tiny_base), records[:120], tmp_path / "one", on_progress=one.append)
    result = launch(cfg(tiny_base, batch_size=4, processes=2), records[:120], tmp_path / "two",
                    on_progress=two.append, on_log_line=lines.append)  # fmt: skip
    assert result.status == "succeeded" and (result.adapter_dir / "adapter_model.safetensors").exists()
    assert len(losses(two)) == len(losses(one)) == 6
    assert all(abs(a - b) < 1e-3 for a, b in zip(losses(one), losses(two), strict=True)), (losses(one), losses(two))
    assert any("training on 2 processes" in line for line in lines)  # rank 0 reports, once


def test_a_cancel_stops_both_processes_at_the_same_step(tiny_base, records, tmp_path):
    points = []
    result = launch(cfg(tiny_base, batch_size=4, processes=2, max_steps=500), records, tmp_path,
                    on_progress=points.append, should_cancel=lambda: len(points) >= 3)  # fmt: skip
    assert result.status == "cancelled" and result.steps < 50


@pytest.mark.django_db(transaction=True)
def test_kill_9_of_one_process_queues_the_job_again_and_it_resumes_from_its_checkpoint(
    celery_worker_process, user, base_model, glossary, settings
):
    settings.TRAINING_DEVICES_PER_WORKER = 2
    job = start(user, base_model, glossary, max_steps=60, save_steps=10, batch_size=2, processes=2)
    wait_until(lambda: TrainingJob.objects.get(pk=job.pk).last_step >= 14, timeout=180)
    rank1 = Path(job.output_dir) / "processes" / "rank-1.pid"
    os.kill(int(rank1.read_text()), signal.SIGKILL)
    job = finished(job, timeout=300)
    assert job.status == "succeeded", job.message
    # At least one more run (a fresh full-suite run on SQLite once took a third; its cause is not yet known).
    assert job.attempts >= 2 and "one of its training processes stopped" in job.log_tail, job.log_tail
    resumed_from = int(job.log_tail.split("resuming from checkpoint-")[1].split()[0])
    assert resumed_from >= 10 and resumed_from % 10 == 0
    assert steps_of(job) == list(range(1, 61))  # no gap, no duplicate
