"""Site pages and error answers: friendly HTML for people, JSON for the API, never a 500."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_the_home_page_and_health_check_answer(client):
    assert client.get("/").status_code == 200
    assert client.get("/healthz/").json() == {"status": "ok"}


def test_unknown_pages_get_a_friendly_404(client):
    response = client.get("/no/such/page/")
    assert response.status_code == 404 and b"There is nothing here" in response.content


def test_unknown_api_urls_get_json(client):
    response = client.get("/api/v1/nothing/")
    assert response.status_code == 404 and response.json()["detail"]


def test_malformed_json_to_the_api_is_a_400(client, user):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(user)
    response = api.post("/api/v1/me/", "{oops", content_type="application/json")
    assert response.status_code in (400, 405)


def test_a_forged_form_post_gets_a_readable_403(user):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post("/accounts/profile/keys/", {"name": "x"})
    assert response.status_code == 403 and b"Reload the page" in response.content


def test_admin_refuses_non_staff(client, user):
    client.force_login(user)
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
