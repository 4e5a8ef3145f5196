"""`make run` leaves a local VAR_DIR/.env (DEBUG and a generated SECRET_KEY) that manage.py reads,
so management commands work after it; without one, a missing SECRET_KEY still stops loudly."""

from __future__ import annotations

import stat
import subprocess
import sys

from modelfactory.runner import ensure_local_env, read_env_file
from tests.helpers import BASE_DIR


def _manage_check(var_dir) -> subprocess.CompletedProcess:
    # No DEBUG, no SECRET_KEY, no settings module: only where the local files live.
    env = {"VAR_DIR": str(var_dir), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=BASE_DIR, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_manage_py_runs_with_the_env_file_make_run_wrote(tmp_path):
    ensure_local_env(tmp_path)
    result = _manage_check(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_without_an_env_file_a_missing_secret_key_still_stops_loudly(tmp_path):
    result = _manage_check(tmp_path)
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_the_env_file_is_written_once_private_and_never_overwritten(tmp_path):
    path = ensure_local_env(tmp_path)
    first = path.read_text()
    assert "DEBUG=true" in first and stat.S_IMODE(path.stat().st_mode) == 0o600
    key = dict(line.split("=", 1) for line in first.splitlines() if "=" in line)["SECRET_KEY"]
    assert len(key) >= 50
    path.write_text(first + "EXTRA=kept\n")
    ensure_local_env(tmp_path)
    assert path.read_text() == first + "EXTRA=kept\n"
    (tmp_path / "other").mkdir()
    assert ensure_local_env(tmp_path / "other").read_text() != first  # a new key per machine


def test_manage_py_lets_the_environment_override_the_file(tmp_path):
    ensure_local_env(tmp_path)
    code = "from django.conf import settings; print(settings.DEBUG, settings.SECRET_KEY)"
    env = {"VAR_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", "DEBUG": "false", "SECRET_KEY": "x" * 60}
    result = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=BASE_DIR, env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["False", "x" * 60]  # Django 5.2 first lists its auto-imports


def test_real_environment_variables_win_over_the_file(tmp_path):
    (tmp_path / ".env").write_text("# a comment\nDEBUG=true\nSECRET_KEY=from-file\nnot a line\n")
    env = {"SECRET_KEY": "from-environment"}
    read_env_file(tmp_path / ".env", env)
    assert env == {"SECRET_KEY": "from-environment", "DEBUG": "true"}
