"""API keys: created on the profile page, shown once, stored hashed, revocable."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from accounts.models import ApiKey, hash_key

pytestmark = pytest.mark.django_db


def create_key_through_page(client, name="laptop") -> str:
    response = client.post("/accounts/profile/keys/", {"name": name})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    match = re.search(r'id="new-key-value">(mf_[^<]+)<', response.content.decode())
    assert match, "the new key is shown in the response that created it"
    return match.group(1)


def test_it_shows_a_new_key_once_and_stores_only_its_hash(client, user):
    client.force_login(user)
    raw = create_key_through_page(client)
    key = ApiKey.objects.get(user=user)
    assert key.key_hash == hash_key(raw) and raw not in (key.prefix, key.key_hash)
    assert raw not in client.get("/accounts/profile/").content.decode()
    from django.contrib.sessions.models import Session

    assert all(raw not in str(s.get_decoded()) for s in Session.objects.all())  # nor kept in any session


def test_it_authenticates_the_api_with_a_bearer_key(client, user):
    client.force_login(user)
    raw = create_key_through_page(client)
    client.logout()
    response = client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 200
    assert response.json()["username"] == "alice" and response.json()["auth"] == "api_key"


def test_it_refuses_a_revoked_key(client, user):
    client.force_login(user)
    raw = create_key_through_page(client)
    key = ApiKey.objects.get(user=user)
    assert client.post(f"/accounts/profile/keys/{key.pk}/revoke/", follow=True).status_code == 200
    client.logout()
    response = client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid or revoked API key."


@pytest.mark.parametrize("header", ["Bearer mf_unknown", "Bearer nonsense", "Bearer a b", "Bearer " + "x" * 500])
def test_it_refuses_unknown_or_malformed_keys_with_401(client, header):
    response = client.get("/api/v1/me/", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response.json()["detail"]


def test_it_refuses_anonymous_api_calls(client):
    response = client.get("/api/v1/me/")
    assert response.status_code in (401, 403)
    assert "credentials were not provided" in response.json()["detail"]


def test_a_user_cannot_revoke_or_see_another_users_key(client, user, other_user):
    client.force_login(other_user)
    create_key_through_page(client, "bobs")
    bobs = ApiKey.objects.get(user=other_user)
    client.force_login(user)
    response = client.post(f"/accounts/profile/keys/{bobs.pk}/revoke/", follow=True)
    assert "No such API key." in response.content.decode()
    assert ApiKey.objects.get(pk=bobs.pk).is_active
    assert "bobs" not in client.get("/accounts/profile/").content.decode()


def test_it_needs_a_name(client, user):
    client.force_login(user)
    response = client.post("/accounts/profile/keys/", {"name": "  "}, follow=True)
    assert "Give the key a name" in response.content.decode()
    assert not ApiKey.objects.exists()


def test_the_profile_page_needs_a_login(client):
    response = client.get("/accounts/profile/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.django_db(transaction=True)
def test_the_management_command_prints_a_working_key(client, user):
    from tests.helpers import child_env

    result = subprocess.run(
        [sys.executable, "manage.py", "create_api_key", "alice", "--name", "script"],
        capture_output=True, text=True, env=child_env(), timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    raw = result.stdout.strip()
    assert client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {raw}").json()["username"] == "alice"
    missing = subprocess.run(
        [sys.executable, "manage.py", "create_api_key", "nobody"], capture_output=True, text=True, env=child_env()
    )
    assert missing.returncode != 0 and "No user named 'nobody'" in missing.stderr


def test_the_schema_and_docs_are_served(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/v1/me/" in schema.content and b"bearer" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"cdn" not in docs.content.lower()
