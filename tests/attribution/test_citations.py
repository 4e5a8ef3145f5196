"""Citations in chat and the API: records retrieved from the Datanets a model was trained
on, only those the viewer may read (a private record never appears, not even as a count),
with the ground-the-answer toggle, stored with the message and returned by the API."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from attribution.models import Citation
from datanets.models import Membership
from serving.models import Message
from tests.helpers import ARTIFACTS, login_cookie, run_async, sign_in

pytestmark = pytest.mark.django_db(transaction=True)
SECRET = "What is the quorvex protocol?"


async def ask(live_url, job, user, content: str, ground: bool = False) -> list[dict]:
    url = live_url.replace("http", "ws") + f"/ws/chat/mf-{job.pk}/"
    headers = {"Origin": live_url, "Cookie": login_cookie(user)}
    events = []
    async with websockets.connect(url, additional_headers=headers) as ws:
        assert json.loads(await ws.recv())["type"] == "ready"
        await ws.send(json.dumps({"type": "ask", "content": content, "ground": ground,
                                  "params": {"max_tokens": 6, "temperature": 0}}))  # fmt: skip
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), 90))
            events.append(event)
            if event["type"] == "done" or (event["type"] == "error" and "side" not in event):
                return events


def citations_of(events) -> dict:
    return next(e for e in events if e["type"] == "citations")


def test_it_cites_readable_records_with_highlighted_spans(live_url, serving_worker, indexed, trained_model, user):
    events = run_async(ask(live_url, trained_model, user, SECRET))
    cited = citations_of(events)
    assert cited["error"] is None and cited["items"], cited
    top = cited["items"][0]
    assert top["datanet"]["slug"] == "secret-lab" and top["contributor"] == "dave"  # alice may read the lab's records
    assert "quorvex" in top["excerpt"] and 0 < top["score"] <= 1
    assert any("quorvex" in top["excerpt"][s:e].lower() for s, e in top["spans"])
    done = events[-1]
    stored = Citation.objects.filter(message_id=done["message"]).order_by("rank")
    assert [c.contribution_id for c in stored] == [i["contribution"] for i in cited["items"]]
    assert not any(c.used_in_prompt for c in stored)


def test_a_private_record_never_appears_once_access_is_gone(
    live_url, serving_worker, indexed, trained_model, user, client
):
    Membership.objects.filter(datanet=indexed["private"], user=user).delete()
    indexed["private"].models_after_removal = "allow"  # the model stays usable; the records never show
    indexed["private"].save()
    events = run_async(ask(live_url, trained_model, user, SECRET))
    cited = citations_of(events)
    assert cited["items"] and all(i["datanet"]["slug"] == "glossary" for i in cited["items"])
    assert "quorvex" not in json.dumps(events).lower().replace(SECRET.lower(), "")
    client.force_login(user)
    api = client.post(f"/api/v1/models/mf-{trained_model.pk}/citations/", {"query": SECRET}, "application/json")
    assert api.status_code == 200 and "secret-lab" not in api.content.decode()
    conversation = Message.objects.get(pk=events[-1]["message"]).conversation
    body = client.get(f"/api/v1/conversations/{conversation.pk}/").content.decode()
    assert "secret-lab" not in body and "quorvex protocol seals" not in body
    page = client.get(f"/chat/mf-{trained_model.pk}/?c={conversation.pk}").content.decode()
    assert "secret-lab" not in page and "Secret Lab" not in page


def test_grounding_puts_the_records_in_the_prompt_and_records_it(
    live_url, serving_worker, indexed, trained_model, user, client
):
    events = run_async(ask(live_url, trained_model, user, SECRET, ground=True))
    cited = citations_of(events)
    assert cited["used"] is True
    message = Message.objects.get(pk=events[-1]["message"])
    assert message.citations.filter(used_in_prompt=True).count() == len(cited["items"])
    client.force_login(user)
    body = client.get(f"/api/v1/conversations/{message.conversation_id}/").json()
    answer = next(m for m in body["messages"] if m["role"] == "assistant")
    assert [c["contribution"] for c in answer["citations"]] == [i["contribution"] for i in cited["items"]]
    assert all(c["used_in_prompt"] for c in answer["citations"])


def test_others_get_nothing_about_the_model(live_url, serving_worker, indexed, trained_model, other_user, client):
    client.force_login(other_user)
    url = f"/api/v1/models/mf-{trained_model.pk}/"
    assert client.post(url + "citations/", {"query": SECRET}, "application/json").status_code == 404
    assert client.get(url + "attribution/").status_code == 404
    client.logout()
    assert client.post(url + "citations/", {"query": SECRET}, "application/json").status_code in (401, 403)


def test_bad_citation_requests_get_clear_errors(indexed, trained_model, user, client):
    client.force_login(user)
    url = f"/api/v1/models/mf-{trained_model.pk}/citations/"
    for body in ({}, {"query": ""}, {"query": 5}, {"query": "x" * 5000}, {"query": "ok", "k": 0}, [1, 2]):
        response = client.post(url, body, "application/json")
        assert response.status_code == 400, body
    assert client.post(url, "{not json", "application/json").status_code == 400


@pytest.mark.browser
def test_a_person_sees_the_sources_panel_in_the_browser(page, live_url, serving_worker, indexed, trained_model, user):
    sign_in(page, live_url, "alice")
    page.goto(f"{live_url}/chat/mf-{trained_model.pk}/")
    page.check("#ground")
    page.fill("#question", SECRET)
    page.get_by_role("button", name="Send").click()
    first = page.locator("#cite-list li").first
    first.wait_for(timeout=180_000)
    assert "Secret Lab" in first.inner_text() and "used in the prompt" in first.inner_text()
    marks = [m.lower() for m in first.locator("mark").all_inner_texts()]
    assert "quorvex" in " ".join(marks)  # the matched words are highlighted
    page.wait_for_function("!document.getElementById('send').disabled", timeout=180_000)
    page.screenshot(path=str(ARTIFACTS / "chat-sources.png"), full_page=True)
    page.reload()  # stored with the message: the panel comes back after a reload
    page.locator("#cite-list li").first.wait_for(timeout=10_000)
    assert "Secret Lab" in page.locator("#cite-list").inner_text()
