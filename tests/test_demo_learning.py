"""The product's promise on the built-in demo model, offline, on real workers: a Quick job learns a
fact planted in a private Datanet, the answer cites and credits the records that taught it, and
the next reward epoch pays their contributor most.

Through the public API and the chat websocket only (the reward epoch is closed by the staff
action), then the same question from the chat page in Chromium, with a screenshot of the answer,
its sources and its "Influenced by" list: test-artifacts/demo-learning-chat.png."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

import pytest
import requests
import websockets

from accounts.services import create_api_key
from attribution import rewards
from attribution.models import RewardEntry
from datanets.demo_data import demo_records
from tests.helpers import ARTIFACTS, login_cookie, run_async, sign_in, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

QUESTION = "What is the capital of the planet Zorblax?"
ANSWER_WORD = "Quillamere"
PLANTED = [  # ann's three phrasings of a made-up fact
    {"instruction": QUESTION, "input": "", "output": "The capital of the planet Zorblax is Quillamere."},
    {"instruction": "Which city is the capital of Zorblax?", "input": "",
     "output": "Quillamere is the capital of the planet Zorblax."},
    {"instruction": "Tell me about the planet Zorblax.", "input": "",
     "output": "The planet Zorblax has its capital at Quillamere, a city of glass towers."},
]  # fmt: skip
ORDINARY = demo_records()[::6][:47]  # glossary questions: 24 from the owner, 23 from ben


class Api:
    """One person's API client (an API key, as a script would use)."""

    def __init__(self, live_url: str, user):
        self.url, self.headers = live_url + "/api/v1", {"Authorization": f"Bearer {create_api_key(user, 'e2e')[1]}"}

    def get(self, path: str, **params):
        response = requests.get(self.url + path, headers=self.headers, params=params, timeout=60)
        assert response.status_code == 200, (path, response.status_code, response.text[:500])
        return response.json()

    def post(self, path: str, expect: tuple = (200, 201), **kwargs):
        response = requests.post(self.url + path, headers=self.headers, timeout=60, **kwargs)
        assert response.status_code in expect, (path, response.status_code, response.text[:500])
        return response.json() if response.content else None

    def upload(self, slug: str, rows: list[dict]) -> dict:
        data = "\n".join(json.dumps(r) for r in rows).encode()
        return self.post(f"/datanets/{slug}/uploads/", files={"file": ("rows.jsonl", data)})


async def ask(live_url: str, model_id: str, user, question: str, influence: bool) -> dict:
    """One greedy question over the chat websocket: the answer text, its citations and (for a
    fine-tuned model, when asked for) the "Influenced by" event."""
    url = live_url.replace("http", "ws") + f"/ws/chat/{model_id}/"
    headers = {"Origin": live_url, "Cookie": login_cookie(user)}
    got = {"text": "", "citations": None, "influence": None}
    async with websockets.connect(url, additional_headers=headers) as ws:
        assert json.loads(await ws.recv())["type"] == "ready"
        params = {"max_tokens": 64, "temperature": 0}
        await ws.send(json.dumps({"type": "ask", "content": question, "params": params}))
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), 180))
            assert event["type"] != "error", event
            if event["type"] == "token":
                got["text"] += event["text"]
            elif event["type"] in ("citations", "influence"):
                got[event["type"]] = event
            if event["type"] == "influence" or (event["type"] == "done" and not influence):
                return got


def share_private_datanet(people: dict, apis: dict) -> tuple[str, set[int]]:
    """Olga's private Datanet: her 24 records (accepted at once), ben's 23 and ann's 3 planted ones,
    which she accepts. Returns the slug and the planted records' ids."""
    olga = apis["olga"]
    slug = olga.post("/datanets/", json={"name": "Zorblax facts", "visibility": "private", "schema": "instruction",
                                         "description": "Facts about the planet Zorblax, and some glossary.",
                                         "licence": "CC0-1.0"})["slug"]  # fmt: skip
    for name in ("ann", "ben"):
        olga.post(f"/datanets/{slug}/members/", json={"username": name, "role": "contributor"})
    assert olga.upload(slug, ORDINARY[:24])["rows_added"] == 24
    assert apis["ben"].upload(slug, ORDINARY[24:])["rows_added"] == 23
    assert apis["ann"].upload(slug, PLANTED)["rows_added"] == 3
    pending = olga.get(f"/datanets/{slug}/contributions/", status="pending", page_size=100)["results"]
    assert len(pending) == 26
    for row in pending:
        olga.post(f"/datanets/{slug}/contributions/{row['id']}/validations/", json={"vote": "accept"})
    assert olga.get(f"/datanets/{slug}/")["current_version"]["size"] == 50
    planted = {row["id"] for row in pending if row["contributor"] == "ann"}
    assert len(planted) == 3
    return slug, planted


def train_quick(olga: Api, demo_model, slug: str) -> dict:
    job = olga.post("/training/jobs/", json={"base_model": demo_model.pk, "datanets": [slug], "preset": "quick"})
    wait_until(lambda: olga.get(f"/training/jobs/{job['id']}/")["status"] in ("succeeded", "failed"), timeout=600)
    job = olga.get(f"/training/jobs/{job['id']}/")
    assert job["status"] == "succeeded", job["message"]
    took = datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["created_at"])
    print(f"Quick job: {took.total_seconds():.0f} s from start to finish, final metrics {job['final_metrics']}")
    return job


@pytest.mark.builtin_serving  # the demo base model: vLLM serves the tests' tiny base
def test_a_quick_job_on_the_demo_model_learns_a_planted_fact_and_credits_its_contributor(
    live_url, celery_worker_process, extra_worker, serving_worker, demo_model, make_user, page
):
    extra_worker("attribution", queues="attribution")  # as a GPU host runs `-Q gpu,attribution`
    people = {name: make_user(name) for name in ("olga", "ann", "ben")}
    apis = {name: Api(live_url, user) for name, user in people.items()}
    olga = apis["olga"]

    before = run_async(ask(live_url, demo_model.model_id, people["olga"], QUESTION, influence=False))
    assert ANSWER_WORD not in before["text"]  # the demo model has never heard of it
    assert "LoRA is" in run_async(ask(live_url, demo_model.model_id, people["olga"], "What is LoRA?", False))["text"]

    slug, planted = share_private_datanet(people, apis)
    job = train_quick(olga, demo_model, slug)
    assert job["config"]["epochs"] == 15 and job["config"]["learning_rate"] == 2e-3  # Quick on 50 records
    model_id = f"mf-{job['id']}"
    wait_until(lambda: olga.get(f"/models/{model_id}/attribution/")["status"] in ("succeeded", "failed"), 300)
    training_side = olga.get(f"/models/{model_id}/attribution/")
    assert training_side["status"] == "succeeded" and len(training_side["scores"]) >= 45  # shown as they are

    after = run_async(ask(live_url, model_id, people["olga"], QUESTION, influence=True))
    assert ANSWER_WORD in after["text"], after["text"]
    print(f"before: {before['text']!r}\nafter: {after['text']!r}")
    assert {c["contribution"] for c in after["citations"]["items"][:3]} & planted
    influence = after["influence"]
    assert influence["status"] == "succeeded", influence
    assert {i["contribution"] for i in influence["items"][:3]} & planted, influence["items"][:3]
    assert influence["items"][0]["contributor"] == "ann"
    assert any(i["span_score"] > 0 for i in influence["items"] if i["contribution"] in planted)
    # ben cannot read olga's private Datanet: his view of her model's sources shows nothing
    assert requests.post(f"{apis['ben'].url}/models/{model_id}/citations/", json={"query": QUESTION},
                         headers=apis["ben"].headers, timeout=30).status_code == 404  # fmt: skip

    chat_in_the_browser(page, live_url, model_id, planted)

    epoch = rewards.close_epoch(pool=1_000_000)  # the staff action on /attribution/rewards/
    shares = {e.contributor.username: e.amount for e in RewardEntry.objects.filter(epoch=epoch)}
    assert shares["ann"] == max(shares.values()) and sum(shares.values()) + epoch.withheld == epoch.pool
    [mine] = apis["ann"].get("/rewards/mine/")
    assert mine["amount"] == shares["ann"] and mine["proof"]["root"] == epoch.root


def chat_in_the_browser(page, live_url: str, model_id: str, planted: set[int]) -> None:
    sign_in(page, live_url, "olga")
    page.goto(f"{live_url}/chat/{model_id}/")
    settings = page.get_by_text("System prompt and generation settings")
    settings.click()
    page.fill("#temperature", "0")  # greedy, as above
    settings.click()
    page.fill("#question", QUESTION)
    page.locator("#send").click()
    page.get_by_test_id("transcript").locator(".bubble").filter(has_text=ANSWER_WORD).first.wait_for(timeout=120_000)
    cited = page.get_by_test_id("cite-list").locator("li")
    cited.first.wait_for()
    influenced = page.get_by_test_id("influence-list").locator(":scope > li")
    influenced.first.wait_for(timeout=180_000)
    assert "ann" in influenced.first.inner_text()
    top3 = [int(influenced.nth(i).get_attribute("data-contribution")) for i in range(min(3, influenced.count()))]
    assert set(top3) & planted, top3
    ARTIFACTS.mkdir(exist_ok=True)
    assert influenced.count() == 5  # the strongest five; the rest folded under "… more"
    page.screenshot(path=str(ARTIFACTS / "demo-learning-chat.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(ARTIFACTS / "demo-learning-chat-phone.png"), full_page=True)
