"""One person may have only so many answers being written at once, across chat pages, websockets and
/v1 (a counter in the shared cache): one more is refused with a sentence (429 on /v1), not queued."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from serving import limits

pytestmark = pytest.mark.django_db


def test_slots_are_counted_per_person_and_freed(user, other_user, settings):
    settings.CHAT_MAX_CONCURRENT = 2
    assert limits.take_slot(user.pk) and limits.take_slot(user.pk)
    assert not limits.take_slot(user.pk)  # a third is refused and not counted
    assert limits.take_slot(other_user.pk)  # someone else is not held up
    limits.free_slot(user.pk)
    assert limits.take_slot(user.pk)
    for _ in range(2):
        limits.free_slot(user.pk)
    limits.free_slot(other_user.pk)


def test_v1_refuses_an_answer_over_the_limit_before_asking_a_worker(model_setup, user, settings):
    job, key = model_setup
    settings.CHAT_MAX_CONCURRENT = 1
    assert limits.take_slot(user.pk)  # an answer already being written, on a chat page say
    try:
        body = json.dumps({"model": f"mf-{job.pk}", "messages": [{"role": "user", "content": "Hi"}]})
        response = Client().post("/v1/chat/completions", body, content_type="application/json",
                                 HTTP_AUTHORIZATION=f"Bearer {key}")  # fmt: skip
    finally:
        limits.free_slot(user.pk)
    assert response.status_code == 429 and response["Retry-After"] == "10"
    assert "You already have 1 answer being written" in response.json()["error"]["message"]
