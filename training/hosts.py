"""One training job on several devices and hosts (data parallel through torchrun).

Devices on one host: the worker that claimed the job runs torchrun with `processes` processes. Several
hosts: that worker is node 0 (global rank 0: it reports, checkpoints and saves); once the run's files
are written it queues one `training.join_training` message per other node on the gpu queue, and the
free training workers that take them run the same torchrun as nodes 1..hosts-1 against node 0's
rendezvous (TRAINING_NODE_ADDRESS, a free port). The job's folder (MEDIA_ROOT) must be storage every
host mounts at the same path. A node that dies fails the attempt on every host; node 0 queues the job
again and the next attempt (new messages, a new rendezvous) resumes from the last complete checkpoint.
A node whose attempt is over (finished, cancelled, queued again) stops its processes; a message for an
attempt that is already over does nothing.
"""

from __future__ import annotations

import functools
import socket
import time
from pathlib import Path

from django.conf import settings

from core.jobs import JobStatus
from core.queue import enqueue_task
from training.models import TrainingJob


def problem(cfg) -> tuple[str, str] | None:
    """(message, field) when `cfg` asks for more devices or hosts than this installation has."""
    if cfg.processes > settings.TRAINING_DEVICES_PER_WORKER:
        return (f"This installation's training hosts have {settings.TRAINING_DEVICES_PER_WORKER} device(s); "
                "choose at most that many.", "processes")  # fmt: skip
    if cfg.hosts > settings.TRAINING_MAX_HOSTS:
        return (f"This installation trains on at most {settings.TRAINING_MAX_HOSTS} host(s) at once; "
                "choose at most that many.", "hosts")  # fmt: skip
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def engine_call(job: TrainingJob, cfg):
    """What runs the job on this worker: the engine in this process, torchrun on this host, or node 0 of
    a run across hosts; called as run_finetune is."""
    from training.engine import distributed, run_finetune

    if cfg.hosts == 1:
        return run_finetune if cfg.processes == 1 else distributed.launch
    nodes = distributed.Nodes(
        count=cfg.hosts,
        rank=0,
        address=settings.TRAINING_NODE_ADDRESS,
        port=_free_port(),
        run_id=f"job{job.pk}-{job.attempts}",
        timeout=settings.TRAINING_RENDEZVOUS_SECONDS,
    )

    def invite(spec_path: Path) -> None:
        for rank in range(1, cfg.hosts):
            enqueue_task("training.join_training", job.pk, job.attempts, rank, nodes.address, nodes.port)

    return functools.partial(distributed.launch, nodes=nodes, on_spec=invite)


def join(job_id: int, attempt: int, rank: int, address: str, port: int, log=None) -> str:
    """Run node `rank` of attempt `attempt` of a job across hosts, until it ends; how it ended. `log(job,
    line)` adds to the job's log (services.append_log; passed in, as services imports this module)."""
    from training.engine import distributed

    def current() -> bool:
        return TrainingJob.objects.filter(pk=job_id, status=JobStatus.RUNNING, attempts=attempt).exists()

    job = TrainingJob.objects.filter(pk=job_id).first()
    if job is None or not current():
        return "stale: that run of the job is over"
    cfg = job.finetune_config()
    nodes = distributed.Nodes(
        count=cfg.hosts,
        rank=rank,
        address=address,
        port=port,
        run_id=f"job{job_id}-{attempt}",
        timeout=settings.TRAINING_RENDEZVOUS_SECONDS,
    )
    if log:
        log(job, f"host {rank + 1} of {cfg.hosts} joined ({socket.gethostname()})")
    checked = [0.0]

    def should_stop() -> bool:  # the database at most every 2 s
        if time.monotonic() - checked[0] < 2:
            return False
        checked[0] = time.monotonic()
        return not current()

    spec = Path(job.output_dir) / "processes" / "spec.json"
    code = distributed.join(spec, cfg.processes, nodes, should_stop=should_stop)
    return "done" if code == 0 else f"its processes stopped (exit code {code})"
