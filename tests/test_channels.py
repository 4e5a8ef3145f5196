"""Websockets against a running daphne: origin check, auth, and delivery."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from core.live import notify_user
from tests.helpers import login_cookie, run_async


def ws_url(live_url: str) -> str:
    return live_url.replace("http://", "ws://") + "/ws/notifications/"


async def handshake(url: str, headers: dict):
    return await websockets.connect(url, additional_headers=headers, open_timeout=10)


def refused_status(url: str, headers: dict) -> int:
    async def go():
        try:
            conn = await handshake(url, headers)
        except InvalidStatus as exc:
            return exc.response.status_code
        await conn.close()
        return 101

    return run_async(go())


def test_it_accepts_a_signed_in_websocket_and_delivers_notifications(live_url, user):
    headers = {"Origin": live_url, "Cookie": login_cookie(user)}

    async def go():
        async with await handshake(ws_url(live_url), headers) as conn:
            assert json.loads(await asyncio.wait_for(conn.recv(), 10)) == {"type": "hello", "user": "alice"}
            await asyncio.get_running_loop().run_in_executor(None, notify_user, user.pk, "training finished", "success")
            assert json.loads(await asyncio.wait_for(conn.recv(), 10)) == {
                "type": "notify",
                "level": "success",
                "text": "training finished",
            }
            await conn.send("{not json")
            assert "not valid JSON" in json.loads(await asyncio.wait_for(conn.recv(), 10))["error"]
            await conn.send(json.dumps({"type": "ping"}))
            assert json.loads(await asyncio.wait_for(conn.recv(), 10)) == {"type": "pong"}

    run_async(go())


def test_it_refuses_an_anonymous_websocket(live_url):
    assert refused_status(ws_url(live_url), {"Origin": live_url}) == 403


def test_it_refuses_a_foreign_origin_even_when_signed_in(live_url, user):
    headers = {"Origin": "http://evil.example", "Cookie": login_cookie(user)}
    assert refused_status(ws_url(live_url), headers) == 403


def test_it_refuses_a_websocket_without_origin(live_url, user):
    assert refused_status(ws_url(live_url), {"Cookie": login_cookie(user)}) == 403


def test_a_user_does_not_receive_another_users_notifications(live_url, user, other_user):
    async def go():
        async with await handshake(ws_url(live_url), {"Origin": live_url, "Cookie": login_cookie(other_user)}) as conn:
            await asyncio.wait_for(conn.recv(), 10)  # hello
            await asyncio.get_running_loop().run_in_executor(None, notify_user, user.pk, "for alice only")
            await conn.send(json.dumps({"type": "ping"}))
            assert json.loads(await asyncio.wait_for(conn.recv(), 10)) == {"type": "pong"}

    run_async(go())


@pytest.mark.django_db(transaction=True)
def test_the_http_side_serves_pages_and_static_files(live_url):
    import urllib.request

    with urllib.request.urlopen(live_url + "/") as response:
        assert response.status == 200 and b"ModelFactory" in response.read()
    with urllib.request.urlopen(live_url + "/static/vendor/htmx-2.0.11.min.js") as response:
        assert response.status == 200
