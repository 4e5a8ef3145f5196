"""Root conftest: the shared fixtures live in tests/fixtures/ and are registered here once
(users, real child processes pointed at the test database, Datanets, the serving model);
plain helpers are in tests/helpers.py and data builders in tests/factories.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import CHROMIUM

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop
pytest.register_assert_rewrite("tests.attribution.canary")  # its asserts explain themselves

pytest_plugins = [
    "tests.fixtures.accounts",
    "tests.fixtures.processes",
    "tests.fixtures.datanets",
    "tests.fixtures.serving",
    "tests.fixtures.demo",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"],
    }  # fmt: skip


@pytest.fixture(autouse=True)
def fresh_reward_contracts(settings):
    """Each test's reward epochs start again at 1 (its database is new), so each gets a fresh token and
    distributor on the dev chain: the addresses kept under VAR_DIR are forgotten before it runs."""
    (Path(settings.VAR_DIR) / "chain" / "contracts.json").unlink(missing_ok=True)


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
