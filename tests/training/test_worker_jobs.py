"""Training jobs on real Celery worker processes against real Redis: success,
redelivery, kill -9 and resume, cancel, out of memory, full disk."""

from __future__ import annotations

import json
import os
import shutil
import signal
import uuid
from pathlib import Path

import pytest

from tests.helpers import wait_until
from training import services
from training.models import BaseModel, TrainingJob

pytestmark = pytest.mark.django_db(transaction=True)


def start(user, base_model, datanet, **config) -> TrainingJob:
    values = {"batch_size": 4, "max_seq_len": 96, "save_steps": 0, "logging_steps": 1, "eval_fraction": 0,
              "learning_rate": 1e-3, **config}  # fmt: skip
    cfg = services.config_from("custom", {**values, "schema": "instruction"}, base_model)
    return services.start_job(user, name="test job", base_model=base_model, datanets=[datanet], cfg=cfg,
                              preset="custom", request_key=uuid.uuid4().hex)  # fmt: skip


def finished(job: TrainingJob, timeout: float = 120) -> TrainingJob:
    wait_until(lambda: TrainingJob.objects.get(pk=job.pk).is_final, timeout=timeout)
    return TrainingJob.objects.get(pk=job.pk)


def steps_of(job: TrainingJob) -> list[int]:
    return list(job.points.order_by("step").values_list("step", flat=True))


def faulty_model(tiny_base: str, tmp_path: Path, **flags) -> BaseModel:
    folder = tmp_path / "faulty"
    shutil.copytree(tiny_base, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **flags}))
    return BaseModel.objects.create(name=f"faulty {flags}", source=str(folder), methods=["lora"], context_length=1024)


def test_a_job_runs_on_the_gpu_queue_and_stores_every_point(celery_worker_process, user, base_model, glossary):
    job = finished(start(user, base_model, glossary, max_steps=12, eval_fraction=0.1, eval_steps=4))
    assert job.status == "succeeded", job.message
    assert steps_of(job) == list(range(1, 13))
    assert job.points.exclude(eval_loss=None).count() >= 3  # eval merged into the step rows
    adapter = Path(job.adapter_dir)
    assert (adapter / "adapter_model.safetensors").exists() and (adapter / "README.md").exists()
    card = (adapter / "README.md").read_text()
    assert glossary.current_version.root in card
    assert f"adapter for {base_model.name}" in card and base_model.source not in card
    # The log a person reads says what happened; the worker's host:pid stays in the operators' field.
    assert "started (attempt 1)" in job.log_tail and job.worker and job.worker not in job.log_tail


def test_a_redelivered_message_never_starts_a_second_run(
    celery_worker_process, extra_worker, user, base_model, glossary
):
    # This worker sweeps unacked messages back after 2 s, as Redis does after the visibility
    # timeout: the running job's message is delivered again while the first run goes on.
    extra_worker("impatient", CELERY_VISIBILITY_TIMEOUT="2", CELERY_UNACKED_RESTORE_INTERVAL="1",
                 CELERY_UNACKED_RESTORE_THROTTLE="1")  # fmt: skip
    job = start(user, base_model, glossary, max_steps=150)
    wait_until(
        lambda: (
            "a second start of this job was ignored: it is already running"
            in TrainingJob.objects.get(pk=job.pk).log_tail
        ),
        90,
    )
    job = finished(job)
    assert job.status == "succeeded" and job.attempts == 1
    assert steps_of(job) == list(range(1, 151))


def test_kill_9_mid_training_resumes_from_the_last_complete_checkpoint(
    celery_worker_process, user, base_model, glossary
):
    job = start(user, base_model, glossary, max_steps=120, save_steps=10)  # long enough to kill it mid-run
    wait_until(lambda: TrainingJob.objects.get(pk=job.pk).last_step >= 24, timeout=90)
    worker = TrainingJob.objects.get(pk=job.pk).worker
    os.kill(int(worker.rsplit(":", 1)[1]), signal.SIGKILL)  # the process running the training
    job = finished(job, timeout=180)
    assert job.status == "succeeded", job.message
    assert job.attempts == 2 and job.worker != worker
    resumed_from = int(job.log_tail.split("resuming from checkpoint-")[1].split()[0])
    assert resumed_from >= 20 and resumed_from % 10 == 0  # the last complete one before the kill
    assert steps_of(job) == list(range(1, 121))  # no gap, no duplicate


def test_cancel_stops_within_one_optimiser_step(celery_worker_process, user, base_model, glossary):
    job = start(user, base_model, glossary, max_steps=2000)
    wait_until(lambda: TrainingJob.objects.get(pk=job.pk).last_step >= 5, timeout=90)
    services.cancel(user, TrainingJob.objects.get(pk=job.pk))
    asked_at = TrainingJob.objects.get(pk=job.pk).last_step
    job = finished(job)
    assert job.status == "cancelled"
    assert job.last_step <= asked_at + 1


def test_out_of_memory_fails_with_advice_and_the_worker_runs_the_next_job(
    celery_worker_process, user, base_model, glossary, tiny_base, tmp_path
):
    oom = finished(start(user, faulty_model(tiny_base, tmp_path, mf_test_oom=True), glossary, max_steps=5))
    assert oom.status == "failed"
    assert "smaller batch size" in oom.message and "shorter sequences" in oom.message and "QLoRA" in oom.message
    after = finished(start(user, base_model, glossary, max_steps=3))
    assert after.status == "succeeded"


def test_a_full_disk_fails_with_a_message_and_keeps_earlier_checkpoints(
    celery_worker_process, user, glossary, tiny_base, tmp_path
):
    model = faulty_model(tiny_base, tmp_path, mf_test_enospc_after=10)
    job = finished(start(user, model, glossary, max_steps=30, save_steps=5, save_total_limit=5))
    assert job.status == "failed" and "disk is full" in job.message
    checkpoints = Path(job.output_dir) / "checkpoints"
    kept = sorted(p.name for p in checkpoints.iterdir())
    assert kept == ["checkpoint-10", "checkpoint-5"]
    assert all((checkpoints / name / "COMPLETE").exists() for name in kept)
    assert (checkpoints / "checkpoint-10" / "adapter_model.safetensors").exists()


def test_a_job_whose_whole_worker_died_is_queued_again_by_the_next_worker_and_resumes(
    extra_worker, user, base_model, glossary
):
    from modelfactory.celery import app

    doomed = extra_worker("doomed", queues="gpu")
    others = [k for reply in app.control.ping(timeout=1) for k in reply if not k.startswith(doomed.name + "@")]
    if others:  # the session's worker must not take this job: it is the one that dies
        app.control.cancel_consumer("gpu", destination=others, reply=True)
    try:
        job = start(user, base_model, glossary, max_steps=120, save_steps=10)
        wait_until(lambda: TrainingJob.objects.get(pk=job.pk).last_step >= 24, timeout=90)
        os.killpg(os.getpgid(doomed.proc.pid), signal.SIGKILL)  # main process and pool child, from outside
        doomed.proc.wait(10)
        assert TrainingJob.objects.get(pk=job.pk).status == "running"  # nobody is left to say otherwise
        extra_worker("rescuer", queues="gpu")  # as the runner restarts it: its start-up sweep finds the job
        job = finished(job, timeout=180)
    finally:
        if others:
            app.control.add_consumer("gpu", destination=others, reply=True)
    assert job.status == "succeeded", job.message
    assert job.attempts == 2 and "its worker stopped; queued again" in job.log_tail
    resumed_from = int(job.log_tail.split("resuming from checkpoint-")[1].split()[0])
    assert resumed_from >= 20 and resumed_from % 10 == 0
    assert steps_of(job) == list(range(1, 121))  # no gap, no duplicate
