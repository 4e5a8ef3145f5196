"""Shared fixtures: users with and without rights, real child processes (daphne,
Celery worker) pointed at the test database, and a headless Chromium."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop

BASE_DIR = Path(__file__).resolve().parent.parent
ARTIFACTS = BASE_DIR / "test-artifacts"
PASSWORD = "correct horse battery staple"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


@pytest.fixture
def make_user(django_user_model):
    def make(username: str = "alice", email: str | None = None, password: str = PASSWORD, **extra):
        from allauth.account.models import EmailAddress

        email = email if email is not None else f"{username}@example.com"
        user = django_user_model.objects.create_user(username=username, email=email, password=password, **extra)
        if email:
            EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
        return user

    return make


@pytest.fixture
def user(make_user):
    return make_user("alice")


@pytest.fixture
def other_user(make_user):
    return make_user("bob")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listened on {port} within {timeout}s")


def wait_until(condition, timeout: float = 30, interval: float = 0.1) -> None:
    """Poll until condition() is true; raises after timeout (a hang guard, not a speed test)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def children_database_url() -> str:
    """DATABASE_URL naming the test database pytest-django created."""
    from django.db import connection

    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    auth = quote(s["USER"] or "")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"])
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def child_env(**extra: str) -> dict:
    env = dict(os.environ)
    env.update(DJANGO_SETTINGS_MODULE="tests.settings", DATABASE_URL=children_database_url(), PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class ServerPool:
    """daphne processes serving modelfactory.asgi on the test database, one per env."""

    def __init__(self):
        self.servers: dict[tuple, tuple[str, subprocess.Popen]] = {}

    def get(self, **extra_env: str) -> str:
        key = tuple(sorted(extra_env.items()))
        if key not in self.servers:
            port = free_port()
            log = open(ARTIFACTS / f"daphne-{port}.log", "w")
            proc = subprocess.Popen(
                [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "modelfactory.asgi:application"],
                cwd=BASE_DIR, env=child_env(**extra_env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            wait_for_port(port, proc)
            self.servers[key] = (f"http://127.0.0.1:{port}", proc)
        return self.servers[key][0]

    def close(self):
        for _, proc in self.servers.values():
            stop(proc)


@pytest.fixture(scope="session")
def server_pool(django_db_setup, django_db_blocker):
    ARTIFACTS.mkdir(exist_ok=True)
    pool = ServerPool()
    yield pool
    pool.close()


@pytest.fixture
def live_url(server_pool, transactional_db) -> str:
    """Base URL of a real daphne (HTTP + websockets) on the test database."""
    return server_pool.get()


class Worker:
    """A real Celery worker process (prefork, concurrency 1), by default on queues default and gpu."""

    def __init__(self, name: str, queues: str = "default,gpu", **extra_env: str):
        ARTIFACTS.mkdir(exist_ok=True)
        self.log_path = ARTIFACTS / f"celery-{name}.log"
        self.name = f"{name}-{os.getpid()}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "modelfactory", "worker", "-Q", queues,
             "--concurrency", "1", "--loglevel", "INFO", "--hostname", f"{self.name}@%h", "--without-mingle",
             "--without-gossip"],
            cwd=BASE_DIR, env=child_env(**extra_env), stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        from modelfactory.celery import app

        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the Celery worker exited; see {self.log_path}")
            replies = app.control.ping(timeout=0.5)
            if any(key.startswith(self.name + "@") for reply in replies for key in reply):
                return
        raise RuntimeError("the Celery worker did not answer a ping within 90s")

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        stop(self.proc)


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup):
    worker = Worker("worker")
    yield worker.proc
    worker.stop()


@pytest.fixture
def extra_worker(django_db_setup):
    """Start more workers (with their own environment) for one test; stopped after it."""
    started = []

    def start(name: str, queues: str = "default,gpu", **env: str) -> Worker:
        started.append(Worker(name, queues, **env))
        return started[-1]

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"],
    }  # fmt: skip


def run_async(coro):
    """asyncio.run in a thread: Playwright's sync API may own this thread's event loop."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def sign_in(page, base: str, username: str, password: str = PASSWORD) -> None:
    """Sign in through the login form in a fresh session."""
    page.context.clear_cookies()
    page.goto(base + "/accounts/login/")
    page.fill("input[name=login]", username)
    page.fill("input[name=password]", password)
    page.locator("form button[type=submit]").first.click()
    page.wait_for_url(base + "/")


def login_cookie(client_user) -> str:
    """A session cookie header value for a user, made through Django's test client."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(client_user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


@pytest.fixture(scope="session", autouse=True)
def close_stray_connections(django_db_setup, django_db_blocker):
    """Before the test database is dropped, end connections other threads or event-loop
    contexts left open (Playwright's sync API runs tests inside its own loop)."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
