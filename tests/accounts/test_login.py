"""Email + password login and which social providers the login page offers."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db


def test_it_signs_in_with_username_and_password(client, user):
    response = client.post("/accounts/login/", {"login": "alice", "password": "correct horse battery staple"})
    assert response.status_code == 302
    assert client.get("/api/v1/me/").json()["username"] == "alice"


def test_a_wrong_password_gets_a_clear_message_and_a_400(client, user):
    response = client.post("/accounts/login/", {"login": "alice", "password": "wrong"})
    assert response.status_code == 400
    assert "not correct" in response.content.decode()
    assert client.get("/api/v1/me/").status_code in (401, 403)


def test_the_login_page_shows_no_social_buttons_when_none_is_configured(client):
    page = client.get("/accounts/login/").content.decode()
    assert "GitHub" not in page and "Google" not in page and "/accounts/oidc/" not in page
    assert "Sign in with an Ethereum wallet" in page


@override_settings(SOCIALACCOUNT_PROVIDERS={"github": {"APPS": [{"client_id": "id", "secret": "s"}]}})
def test_the_login_page_shows_only_the_configured_providers(client):
    page = client.get("/accounts/login/").content.decode()
    assert "GitHub" in page and "Google" not in page


def test_provider_environment_variables_enable_each_provider():
    env = dict(os.environ, GOOGLE_CLIENT_ID="g", GOOGLE_CLIENT_SECRET="gs", GOOGLE_TRUSTED="true")
    env.update(OIDC_SERVER_URL="https://id.example.org/o", OIDC_CLIENT_ID="c", OIDC_CLIENT_SECRET="cs")
    code = (
        "import django; django.setup(); from django.conf import settings as s; p = s.SOCIALACCOUNT_PROVIDERS;"
        "print(sorted(p), p['google']['EMAIL_AUTHENTICATION'], p['openid_connect']['APPS'][0]['settings']"
        "['email_authentication'])"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "['google', 'openid_connect'] True False", result.stderr
