"""Settings come from the environment, typed, and fail loudly on bad values."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from core import env

BASE_DIR = Path(__file__).resolve().parent.parent
DEPLOY_ENV = {
    "SECRET_KEY": "k" * 20 + "-a-long-random-deployment-secret-0123456789",
    "ALLOWED_HOSTS": "models.example.org",
    "CSRF_TRUSTED_ORIGINS": "https://models.example.org",
    "DATABASE_URL": "postgres://mf@db.internal:5432/modelfactory",
    "REDIS_URL": "redis://cache.internal:6379/0",
    "SECURE_HSTS_PRELOAD": "true",
}


def start(extra: dict, *args: str) -> subprocess.CompletedProcess:
    """Run manage.py with a clean environment plus `extra` (no test settings)."""
    clean = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "PYTHONPATH"}}
    clean.update(DJANGO_SETTINGS_MODULE="modelfactory.settings", **extra)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=clean, capture_output=True, text=True, timeout=120
    )


def test_the_deployment_checks_pass_with_a_deployment_environment():
    result = start(DEPLOY_ENV, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "extra, named",
    [
        ({"DEBUG": "maybe"}, "DEBUG='maybe' is not a boolean"),
        ({"DB_CONN_MAX_AGE": "soon"}, "DB_CONN_MAX_AGE='soon' is not an integer"),
        ({"REDIS_URL": "http://cache:6379"}, "REDIS_URL='http://cache:6379' has scheme 'http'"),
        ({"DATABASE_URL": "mysql://db/x"}, "DATABASE_URL='mysql://db/x' has scheme 'mysql'"),
        ({"SECRET_KEY": ""}, "SECRET_KEY must be set"),
        ({"ALLOWED_HOSTS": "*"}, "ALLOWED_HOSTS must list host names"),
        ({"GITHUB_CLIENT_ID": "abc"}, "GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET must be set together"),
        ({"OIDC_SERVER_URL": "https://id.example.org/o"}, "OIDC_SERVER_URL, OIDC_CLIENT_ID and OIDC_CLIENT_SECRET"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(extra, named):
    result = start({**DEPLOY_ENV, **extra}, "check")
    assert result.returncode != 0
    assert named in result.stderr
    assert "ImproperlyConfigured" in result.stderr.splitlines()[-1]


def test_debug_is_off_unless_asked_for():
    result = start(DEPLOY_ENV, "shell", "-c", "from django.conf import settings; print(settings.DEBUG)")
    assert result.stdout.strip().splitlines()[-1] == "False", result.stderr


def test_the_helpers_read_typed_values(monkeypatch):
    monkeypatch.setenv("X_BOOL", "Yes")
    monkeypatch.setenv("X_INT", "7")
    monkeypatch.setenv("X_LIST", "a, b,,c")
    assert env.env_bool("X_BOOL") is True
    assert env.env_int("X_INT", 1, minimum=1, maximum=9) == 7
    assert env.env_list("X_LIST") == ["a", "b", "c"]
    with pytest.raises(ImproperlyConfigured, match="X_INT=7 is above the maximum of 5"):
        env.env_int("X_INT", 1, maximum=5)
    assert env.redis_urls("unix:///tmp/r.sock") == ("unix:///tmp/r.sock", "redis+socket:///tmp/r.sock")


def test_upload_limits_come_from_the_environment_and_refuse_tiny_values():
    show = "from django.conf import settings as s; print(s.MAX_UPLOAD_BYTES, s.DATA_UPLOAD_MAX_MEMORY_SIZE)"
    default = start(DEPLOY_ENV, "shell", "-c", show)
    assert default.stdout.splitlines()[-1].split() == [str(200 * 1024 * 1024), str(5 * 1024 * 1024)], default.stderr
    custom = start(
        {**DEPLOY_ENV, "MAX_UPLOAD_BYTES": "4096", "DATA_UPLOAD_MAX_MEMORY_SIZE": "2048"}, "shell", "-c", show
    )
    assert custom.stdout.splitlines()[-1].split() == ["4096", "2048"], custom.stderr
    tiny = start({**DEPLOY_ENV, "MAX_UPLOAD_BYTES": "10"}, "check")
    assert tiny.returncode != 0 and "MAX_UPLOAD_BYTES=10 is below the minimum of 1024" in tiny.stderr
