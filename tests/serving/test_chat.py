"""The chat websocket and pages: streaming, compare mode, stop, conversations, access."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from serving.models import Conversation, Message
from tests.helpers import ARTIFACTS, login_cookie, run_async, sign_in

pytestmark = pytest.mark.django_db(transaction=True)


async def collect(ws, until_done: int = 1) -> list[dict]:
    events, done = [], 0
    while done < until_done:
        event = json.loads(await asyncio.wait_for(ws.recv(), 60))
        events.append(event)
        done += event["type"] in ("done",)
        if event["type"] == "error" and "side" not in event:
            break
    return events


def test_it_streams_an_answer_and_keeps_the_conversation(live_url, serving_worker, model_setup, user):
    job, _ = model_setup
    url = live_url.replace("http", "ws") + f"/ws/chat/mf-{job.pk}/"

    async def go():
        async with websockets.connect(url, additional_headers={"Origin": live_url, "Cookie": login_cookie(user)}) as ws:
            assert json.loads(await ws.recv()) == {"type": "ready", "model": f"mf-{job.pk}"}
            await ws.send(json.dumps({"type": "ask", "content": "What is LoRA?", "system": "Be brief.",
                                      "params": {"max_tokens": 8, "temperature": 0}, "compare": True}))  # fmt: skip
            events = await collect(ws, until_done=2)
            await ws.send("not json")
            bad = json.loads(await ws.recv())
            while bad["type"] == "influence":  # the answer's scoring may report in between
                bad = json.loads(await ws.recv())
            return events, bad

    events, bad = run_async(go())
    started = events[0]
    assert started["type"] == "started" and set(started["sides"]) == {"model", "base"}
    assert started["title"] == "What is LoRA?"  # the page lists the new conversation without a reload
    for side in ("model", "base"):  # a waiting note first (the model may still load), a close last
        kinds = [e["type"] for e in events if e.get("side") == side]
        statuses = [i for i, kind in enumerate(kinds) if kind == "status"]
        # waiting notes ("generating", and "loading" when the worker loads the base first) come only
        # before the answer's text
        assert kinds[0] == "status" and kinds[-1] == "done" and statuses == list(range(len(statuses)))
    by_side = {
        s: "".join(e["text"] for e in events if e["type"] == "token" and e["side"] == s) for s in ("model", "base")
    }
    conversation = Conversation.objects.get(pk=started["conversation"])
    assert conversation.system_prompt == "Be brief." and conversation.user == user
    stored = {m.side: m.content for m in Message.objects.filter(conversation=conversation, role="assistant")}
    assert stored == {k: v for k, v in by_side.items() if v}
    assert bad["type"] == "error" and "JSON" in bad["error"]


def test_only_users_who_may_use_the_model_connect(live_url, serving_worker, model_setup, user, other_user):
    job, _ = model_setup
    url = live_url.replace("http", "ws") + f"/ws/chat/mf-{job.pk}/"

    async def status(headers):
        try:
            async with websockets.connect(url, additional_headers=headers, open_timeout=10):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    assert run_async(status({"Origin": live_url, "Cookie": login_cookie(other_user)})) == 403
    assert run_async(status({"Origin": live_url})) == 403
    assert run_async(status({"Origin": live_url, "Cookie": login_cookie(user)})) == 101


def test_the_chat_and_models_pages(client, model_setup, user, other_user):
    job, _ = model_setup
    client.force_login(user)
    page = client.get(f"/chat/mf-{job.pk}/").content.decode()
    assert "Glossary tutor" in page and 'data-testid="citations"' in page
    assert f"/chat/mf-{job.pk}/" in client.get("/chat/").content.decode()
    assert f"/chat/mf-{job.pk}/" in client.get("/models/").content.decode()
    client.force_login(other_user)
    assert client.get(f"/chat/mf-{job.pk}/").status_code == 404
    assert client.post(f"/models/{job.pk}/delete/").status_code == 404
    client.force_login(user)
    client.post(f"/models/{job.pk}/delete/")
    assert client.get(f"/chat/mf-{job.pk}/").status_code == 404


@pytest.mark.browser
def test_a_person_chats_in_the_browser(page, live_url, serving_worker, model_setup, user):
    job, _ = model_setup
    sign_in(page, live_url, "alice")
    page.goto(f"{live_url}/chat/mf-{job.pk}/")
    page.fill("#question", "What is LoRA?")
    page.get_by_role("button", name="Send").click()
    page.wait_for_function("!document.getElementById('send').disabled", timeout=180_000)  # a hang guard
    answers = page.locator(".bubble.assistant")
    assert answers.count() == 1
    page.screenshot(path=str(ARTIFACTS / "chat.png"), full_page=True)
    stored = Message.objects.get(role="assistant").content

    def visible(text: str) -> str:  # a random model emits control characters a page does not render
        return "".join(ch for ch in text if ch.isprintable() and not ch.isspace())

    assert stored and visible(stored) in visible(answers.first.inner_text())
