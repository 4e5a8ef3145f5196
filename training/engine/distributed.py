"""One training job across several processes (data parallel), through PyTorch's standard launcher.

`launch(cfg, ...)` runs `python -m torch.distributed.run --nproc_per_node N` (torchrun) with this module
as the program: every process runs the same `run_finetune`; transformers' Trainer (through accelerate)
shards each global batch across them and averages the gradients (NCCL on GPUs, gloo on CPU).
Checkpoints, resume and the adapter are written by rank 0 only. Rank 0 reports progress and log lines
as JSON lines in a file the launcher follows and passes on, so the caller sees what a one-process run
shows. A cancel is a flag file the launcher creates; every rank reads it at each step end and the ranks
agree through an all-reduce, so they stop at the same step. If any process dies (killed, out of memory),
torchrun stops the others and `launch` raises RankFailed: the caller queues the job again and the next
run resumes from the last complete checkpoint.

Several hosts: `launch(..., nodes=Nodes(...))` runs node 0 (global rank 0, which reports and saves) and
serves torchrun's static rendezvous at `nodes.address:nodes.port`; `on_spec(spec_path)` is called once
the run's files are written, for the caller to ask other hosts to `join` with node ranks 1..count-1. The
job folder must be on storage every host sees (the records, checkpoints and cancel flag live there). A
host that dies or never comes (within nodes.timeout) fails the run as RankFailed, like a dead process.

    python -m training.engine.distributed SPEC.json    (what each process runs; not for people)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from training.engine.config import FinetuneConfig
from training.engine.train import EngineError, FinetuneResult, run_finetune


class RankFailed(EngineError):
    """A training process stopped; the job can go on from its last complete checkpoint."""


@dataclass
class Nodes:
    """One run across `count` hosts: this one is node `rank`; node 0 listens at address:port."""

    count: int
    rank: int
    address: str
    port: int
    run_id: str
    timeout: int = 300  # seconds node 0 waits for every host to arrive

    def torchrun_args(self) -> list[str]:
        return ["--nnodes", str(self.count), "--node_rank", str(self.rank), "--master_addr", self.address,
                "--master_port", str(self.port), "--rdzv_id", self.run_id,
                "--rdzv_conf", f"timeout={self.timeout}"]  # fmt: skip


def _torchrun(spec_path: Path, processes: int, nodes: Nodes | None) -> list[str]:
    where = nodes.torchrun_args() if nodes else ["--standalone"]
    return [sys.executable, "-m", "torch.distributed.run", *where, "--nproc_per_node", str(processes),
            "-m", "training.engine.distributed", str(spec_path)]  # fmt: skip


def _env(processes: int) -> dict:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    return env


def launch(
    cfg: FinetuneConfig,
    records: Iterable[dict],
    out_dir: str | Path,
    on_progress: Callable[[dict], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    card: dict | None = None,
    on_log_line: Callable[[str], None] | None = None,
    poll: float = 0.5,
    nodes: Nodes | None = None,
    on_spec: Callable[[Path], None] | None = None,
) -> FinetuneResult:
    out_dir = Path(out_dir)
    work = out_dir / "processes"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with open(work / "records.jsonl", "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    files = {"records": "records.jsonl", "events": "events.jsonl", "cancel": "cancel", "result": "result.json"}
    spec = {"cfg": json.loads(cfg.to_json()), "out_dir": str(out_dir), "card": card or {},
            **{name: str(work / file) for name, file in files.items()}}  # fmt: skip
    (work / "spec.json").write_text(json.dumps(spec))
    if on_spec:
        on_spec(work / "spec.json")
    cmd = _torchrun(work / "spec.json", cfg.processes, nodes)
    with open(work / "processes.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=_env(cfg.processes),
                                start_new_session=True)  # fmt: skip
        seen, done_at = 0, None
        try:
            while proc.poll() is None:
                seen = _relay(Path(spec["events"]), seen, on_progress, on_log_line)
                if should_cancel and should_cancel():
                    Path(spec["cancel"]).touch()
                if done_at is None and Path(spec["result"]).exists():
                    done_at = time.monotonic()
                if done_at is not None and time.monotonic() - done_at > 60:
                    break  # rank 0 has its result; another host's slow exit must not hold the job
                time.sleep(poll)
        finally:
            if proc.poll() is None:  # the caller went away: stop every process
                os.killpg(proc.pid, 9)
                proc.wait()
        _relay(Path(spec["events"]), seen, on_progress, on_log_line)
    result = json.loads(Path(spec["result"]).read_text()) if Path(spec["result"]).exists() else {}
    if result.get("error"):
        raise EngineError(result["error"])
    if not result:  # rank 0 wrote none: it did not finish (a result with a late failure elsewhere stands)
        tail = (work / "processes.log").read_text(errors="replace")[-2000:]
        if nodes and nodes.count > 1 and not Path(spec["events"]).exists():  # rank 0 never started training
            why = f"(fewer free training workers than the job's {nodes.count} hosts?)"
            raise RankFailed(f"The other training host(s) did not all join within {nodes.timeout} s {why}. "
                             f"Last output:\n{tail}")  # fmt: skip
        raise RankFailed(f"A training process stopped (torchrun exit code {proc.returncode}). Last output:\n{tail}")
    adapter = result.get("adapter_dir")
    return FinetuneResult(result["status"], Path(adapter) if adapter else None, result["steps"], result.get("metrics"))


def join(
    spec_path: str | Path,
    processes: int,
    nodes: Nodes,
    should_stop: Callable[[], bool] | None = None,
    poll: float = 0.5,
) -> int:
    """Run node `nodes.rank` (≥ 1) of a run that node 0 launched: its processes, until they end; torchrun's
    exit code. `should_stop` (the run was given up, cancelled or moved on) stops them at once."""
    spec_path = Path(spec_path)
    with open(spec_path.parent / f"node-{nodes.rank}.log", "w") as log:
        proc = subprocess.Popen(_torchrun(spec_path, processes, nodes), stdout=log, stderr=subprocess.STDOUT,
                                env=_env(processes), start_new_session=True)  # fmt: skip
        try:
            while proc.poll() is None:
                if should_stop and should_stop():
                    break
                time.sleep(poll)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
                proc.wait()
    return proc.returncode


def _relay(events: Path, seen: int, on_progress, on_log_line) -> int:
    """Pass on rank 0's events after byte `seen`; the new position (a partial last line waits)."""
    if not events.exists():
        return seen
    with open(events, "rb") as f:
        f.seek(seen)
        data = f.read()
    done = data.rfind(b"\n") + 1
    for line in data[:done].splitlines():
        event = json.loads(line)
        if event["type"] == "point" and on_progress:
            on_progress(event["value"])
        elif event["type"] == "log" and on_log_line:
            on_log_line(event["value"])
    return seen + done


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    rank = int(os.environ.get("RANK", "0"))
    rank0 = rank == 0
    (Path(spec["events"]).parent / f"rank-{rank}.pid").write_text(str(os.getpid()))  # for operators and tests
    cfg = FinetuneConfig.from_dict(spec["cfg"])
    events = open(spec["events"], "a", encoding="utf-8") if rank0 else None

    def emit(kind: str, value) -> None:
        events.write(json.dumps({"type": kind, "value": value}) + "\n")
        events.flush()

    def records():
        with open(spec["records"], encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)

    if rank0:
        hosts = int(os.environ.get("GROUP_WORLD_SIZE", "1"))
        across = f" across {hosts} hosts" if hosts > 1 else ""
        emit("log", f"training on {os.environ.get('WORLD_SIZE', '1')} processes{across} (pid {os.getpid()} is rank 0)")
    try:
        result = run_finetune(
            cfg, records(), spec["out_dir"], on_progress=(lambda p: emit("point", p)) if rank0 else None,
            should_cancel=Path(spec["cancel"]).exists, card=spec["card"],
            on_log_line=(lambda line: emit("log", line)) if rank0 else None,
        )  # fmt: skip
    except EngineError as exc:
        if rank0:
            Path(spec["result"]).write_text(json.dumps({"error": str(exc)}))
        _teardown(together=False)
        return 1
    if rank0:
        Path(spec["result"]).write_text(json.dumps({
            "status": result.status, "steps": result.steps, "metrics": result.metrics,
            "adapter_dir": str(result.adapter_dir) if result.adapter_dir else None,
        }))  # fmt: skip
    _teardown(together=True)
    return 0


def _teardown(together: bool) -> None:
    """Close the process group before exit: a rank that exits with it open can abort in its threads'
    destructors (seen on a second host). `together`: first wait (at most a minute) for every rank."""
    import datetime

    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    try:
        if together and dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=datetime.timedelta(seconds=60))
        elif together:
            dist.barrier()
    except RuntimeError:
        pass  # another rank is gone; its host reports it
    dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
