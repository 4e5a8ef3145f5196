#!/usr/bin/env python
import os
import sys
from pathlib import Path


def load_local_env() -> None:
    """Read VAR_DIR/.env, which `make run` writes (DEBUG and a generated SECRET_KEY), so that
    management commands work after `make run` too. Variables already in the environment win."""
    var_dir = os.environ.get("VAR_DIR") or str(Path(__file__).resolve().parent / "var")
    path = Path(var_dir) / ".env"
    if not path.is_file():
        return
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() and not name.lstrip().startswith("#"):
            os.environ.setdefault(name.strip(), value.strip())


def main():
    load_local_env()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "modelfactory.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
