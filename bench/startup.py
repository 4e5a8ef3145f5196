"""Web process start-up: ModelFactory's ASGI app against bare Django, same run.

CONVENTIONS §9 wants the web process to boot in about a second because heavy
libraries (torch, transformers, peft…) load only inside engines and tasks. This
measures the median wall time of a fresh interpreter that loads the full ASGI
application and URLconf, against a baseline interpreter that sets up Django with
only the contrib apps, and prints the ratio. It also reports whether torch was
imported (it must not be).

Usage: .venv/bin/python bench/startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

APP = (
    "import sys, django; django.setup(); import modelfactory.asgi, modelfactory.urls; "
    "print('torch' in sys.modules, 'transformers' in sys.modules)"
)
BASELINE = (
    "import django; from django.conf import settings; "
    "settings.configure(INSTALLED_APPS=['django.contrib.auth','django.contrib.contenttypes',"
    "'django.contrib.sessions','django.contrib.admin','django.contrib.messages'], "
    "DATABASES={'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': ':memory:'}}); django.setup(); "
    "print(False, False)"
)


def timed(code: str, env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True, check=True
    )
    return time.perf_counter() - start, out.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="modelfactory.settings", DEBUG="true")
    env.pop("REDIS_URL", None)
    timed(APP, env)  # warm the file cache once for both
    app_times, base_times, flags = [], [], ""
    for _ in range(args.runs):  # interleaved so drift hits both alike
        t, flags = timed(APP, env)
        app_times.append(t)
        base_times.append(timed(BASELINE, env)[0])
    app, base = statistics.median(app_times), statistics.median(base_times)
    torch_loaded, transformers_loaded = flags.split()
    print(f"runs: {args.runs} (median wall time of a fresh interpreter)")
    print(f"baseline bare Django setup:   {base * 1000:7.0f} ms")
    print(f"ModelFactory ASGI app + URLs: {app * 1000:7.0f} ms")
    print(f"ratio app / baseline:         {app / base:7.2f}x")
    print(f"torch imported: {torch_loaded}; transformers imported: {transformers_loaded}")


if __name__ == "__main__":
    main()
