"""API throttles (DRF scopes counted in the shared cache): over a rate is a 429 with Retry-After and
a sentence; public verification is reused per version instead of recomputed on every request."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from tests.factories import alpaca, jsonl

pytestmark = pytest.mark.django_db

RATES = {"anon": None, "user": None, "verify": "3/min", "uploads": "2/hour", "jobs": None, "citations": None}


@pytest.fixture
def rates(monkeypatch):
    """The suite runs without throttles; these tests set small rates (DRF reads them at import)."""
    from django.core.cache import cache

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", RATES)
    cache.delete_many([f"throttle_{scope}_127.0.0.1" for scope in RATES])
    yield RATES


def test_anonymous_verification_is_throttled_with_a_retry_after(rates, make_datanet, accepted):
    datanet = make_datanet(slug="open", visibility="public")
    accepted(datanet, alpaca(3))
    api = APIClient()
    codes = [api.get("/api/v1/datanets/open/verify/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = api.get("/api/v1/datanets/open/verify/")
    assert int(refused["Retry-After"]) > 0 and "throttled" in refused.json()["detail"].lower()
    assert api.get("/api/v1/datanets/open/").status_code == 200  # other endpoints keep their own rates


def test_uploads_have_a_rate_of_their_own(rates, make_datanet, user):
    datanet = make_datanet(owner=user, slug="mine")
    api = APIClient()
    api.force_authenticate(user)
    sent = [
        api.post(f"/api/v1/datanets/{datanet.slug}/uploads/", {"file": _file(i)}, format="multipart").status_code
        for i in range(3)
    ]
    assert sent == [201, 201, 429]
    assert datanet.contributions.count() == 4  # two files of two rows; the refused one stored nothing


def _file(i: int):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(f"rows{i}.jsonl", jsonl(alpaca(2, start=10 * i)))


def test_verification_is_reused_per_version(settings, monkeypatch, make_datanet, accepted, client):
    from datanets import services

    settings.VERIFY_CACHE_SECONDS = 60
    datanet = make_datanet(slug="counted", visibility="public")
    accepted(datanet, alpaca(2))
    calls = []
    real = services.verify
    monkeypatch.setattr(services, "verify", lambda d: calls.append(d.pk) or real(d))
    for _ in range(3):
        assert client.get("/api/v1/datanets/counted/verify/").json()["ok"] is True
    assert len(calls) == 1
    accepted(datanet, alpaca(1, start=5))  # a new version: verified afresh
    assert client.get("/api/v1/datanets/counted/verify/").json()["ok"] is True and len(calls) == 2
