"""The chat page in Chromium tells the truth: refusals and failures show in the conversation,
a waiting note until the first token, the conversation list and the settings keep up without
a reload, compare shows two columns, and a phone never scrolls sideways."""

from __future__ import annotations

import pytest

from serving.models import Conversation, Message
from tests.helpers import ARTIFACTS, sign_in

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

NO_SIDEWAYS_SCROLL = "document.documentElement.scrollWidth <= window.innerWidth"
# Every text the waiting note showed, recorded as it happens (the note may last only a moment).
RECORD_NOTES = """() => { window.notes = [];
  new MutationObserver(() => document.querySelectorAll('.pending').forEach((n) => window.notes.push(n.dataset.text)))
    .observe(document.getElementById('transcript'), {subtree: true, childList: true, characterData: true}); }"""


def open_chat(page, live_url, job) -> None:
    sign_in(page, live_url, "alice")
    page.goto(f"{live_url}/chat/mf-{job.pk}/")
    page.wait_for_function("!document.getElementById('send').disabled")  # the socket is open


def ask(page, question: str) -> None:
    page.fill("#question", question)
    page.get_by_role("button", name="Send").click()
    page.wait_for_function("!document.getElementById('send').disabled", timeout=180_000)  # a hang guard


def test_a_refusal_from_the_server_shows_in_the_conversation(page, live_url, serving_worker, model_setup):
    job, _ = model_setup
    page.set_viewport_size({"width": 1280, "height": 900})
    open_chat(page, live_url, job)
    page.get_by_text("System prompt and generation settings").click()
    page.fill("#max_tokens", "2000")  # allowed by the form, but more than the tiny model's 1,024-token context
    page.check("#ground")
    ask(page, "What is LoRA?")

    answer = page.locator(".bubble.assistant")
    assert answer.count() == 1
    refusal = answer.locator(".bubble-error")
    assert refusal.is_visible() and "context of 1024 tokens" in refusal.inner_text()
    assert page.locator(".pending").count() == 0
    conversation = Conversation.objects.get()
    link = page.locator("#conv-list a")
    assert link.count() == 1 and link.get_attribute("href") == f"?c={conversation.pk}"
    assert link.inner_text() == "What is LoRA?" and "None yet" not in page.locator("#conv-list").inner_text()
    page.screenshot(path=str(ARTIFACTS / "chat-error.png"), full_page=True)

    # A request the server refuses before any answer starts (no side): a line of its own.
    page.evaluate("document.getElementById('max_tokens').removeAttribute('max')")
    page.fill("#max_tokens", "5000")
    ask(page, "And QLoRA?")
    line = page.locator(".chat-error")
    assert line.is_visible() and "between 1 and 4096" in line.inner_text()
    assert not Message.objects.filter(role="assistant").exists()
    assert not Message.objects.filter(content="And QLoRA?").exists()  # refused whole: nothing written

    page.reload()
    page.wait_for_function("!document.getElementById('send').disabled")
    assert "No answer was kept" in page.locator("#transcript .chat-note").inner_text()  # not an empty bubble
    assert page.input_value("#max_tokens") == "5000" and page.is_checked("#ground")
    assert not page.is_checked("#compare")


def test_compare_shows_two_columns_and_follows_the_answer(page, live_url, serving_worker, model_setup):
    job, _ = model_setup
    page.set_viewport_size({"width": 1280, "height": 640})
    open_chat(page, live_url, job)
    # A returning visitor's remembered settings (longer answers, so the transcript outgrows its box).
    page.evaluate("localStorage.setItem('modelfactory.chat.settings', JSON.stringify({max_tokens: '256'}))")
    page.reload()
    page.wait_for_function("!document.getElementById('send').disabled")
    assert page.input_value("#max_tokens") == "256"
    page.evaluate(RECORD_NOTES)
    assert page.locator("#compare").is_visible()  # beside Send, not inside the settings box
    page.check("#compare")
    ask(page, "What is LoRA?")

    model, base = page.locator(".answers.pair .bubble.side-model"), page.locator(".answers.pair .bubble.side-base")
    m, b = model.bounding_box(), base.bounding_box()
    assert abs(m["y"] - b["y"]) < 2 and b["x"] > m["x"] + m["width"] - 1  # side by side
    assert "Base model" in base.locator(".who").inner_text()
    notes = page.evaluate("window.notes")
    assert "Finding sources…" in notes and page.locator(".pending").count() == 0
    ask(page, "And QLoRA?")  # a second long answer: the transcript is now taller than its box
    transcript = page.locator("#transcript")
    assert transcript.evaluate("t => t.scrollHeight > t.clientHeight + 100")
    assert transcript.evaluate("t => t.scrollHeight - t.scrollTop - t.clientHeight < 48")  # it followed
    page.set_viewport_size({"width": 1280, "height": 900})
    page.evaluate("window.scrollTo(0, 0)")
    transcript.evaluate("t => { t.scrollTop = t.querySelector('.answers:last-child').offsetTop - t.offsetTop - 60; }")
    page.screenshot(path=str(ARTIFACTS / "chat-compare.png"))

    page.reload()
    page.wait_for_function("!document.getElementById('send').disabled")
    assert page.is_checked("#compare")
    assert page.locator(".answers.pair").count() == 2  # stored answers keep their two columns


def test_the_chat_page_fits_a_phone(page, live_url, serving_worker, model_setup):
    job, _ = model_setup
    page.set_viewport_size({"width": 390, "height": 844})
    open_chat(page, live_url, job)
    assert page.evaluate(NO_SIDEWAYS_SCROLL)
    page.check("#compare")
    ask(page, "Supercalifragilistic" * 12 + " what is LoRA?")

    assert page.locator(".bubble.assistant").count() == 2
    assert page.evaluate(NO_SIDEWAYS_SCROLL)
    m = page.locator(".bubble.side-model").bounding_box()
    b = page.locator(".bubble.side-base").bounding_box()
    assert b["y"] >= m["y"] + m["height"]  # stacked, each with its label
    main, sources = page.locator(".chat-main").bounding_box(), page.locator(".citations").bounding_box()
    assert sources["y"] >= main["y"] + main["height"]  # the sources panel goes under the chat
    page.screenshot(path=str(ARTIFACTS / "chat-phone.png"), full_page=True)
