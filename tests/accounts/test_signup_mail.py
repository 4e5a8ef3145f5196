"""A mail server that is down never turns a sign-up into a server error."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings

from tests.helpers import PASSWORD, free_port


@pytest.mark.django_db
def test_a_sign_up_succeeds_and_says_so_when_the_mail_server_refuses(client):
    closed_port = free_port()  # nothing listens there
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", EMAIL_HOST="127.0.0.1",
                           EMAIL_PORT=closed_port, ACCOUNT_EMAIL_VERIFICATION="optional"):  # fmt: skip
        response = client.post(
            "/accounts/signup/",
            {"email": "nadia@example.org", "username": "nadia", "password1": PASSWORD, "password2": PASSWORD},
            follow=True,
        )
    assert response.status_code == 200
    assert get_user_model().objects.filter(username="nadia").exists()
    shown = [str(m) for m in response.context["messages"]]
    assert any("could not send an email to nadia@example.org" in m for m in shown), shown
