"""Social login end to end against a real OpenID Connect provider on loopback.

The provider (django-oauth-toolkit, tests/oidc_provider) and ModelFactory run as
two processes; headless Chromium walks the authorization-code flow between them.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from allauth.socialaccount.models import SocialAccount
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth import get_user_model

from tests.helpers import ARTIFACTS, BASE_DIR, free_port, stop, wait_for_port

pytestmark = pytest.mark.browser
CLIENT_ID, CLIENT_SECRET = "modelfactory-test-client", "modelfactory-test-secret-0123456789"


@pytest.fixture(scope="module")
def oidc_provider():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    folder = Path(tempfile.mkdtemp(prefix="mf-oidc-"))
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(BASE_DIR),
        "DJANGO_SETTINGS_MODULE": "tests.oidc_provider.settings",
        "OP_DB": str(folder / "op.sqlite3"),
        "OP_RSA_KEY": key.decode(),
        "OP_CLIENT_ID": CLIENT_ID,
        "OP_CLIENT_SECRET": CLIENT_SECRET,
    }
    run = dict(cwd=BASE_DIR, env=env, check=True, capture_output=True, timeout=120)
    subprocess.run([sys.executable, "-m", "django", "migrate", "-v0"], **run)
    subprocess.run([sys.executable, "tests/oidc_provider/setup.py"], **run)
    port = free_port()
    log = open(ARTIFACTS / "oidc-provider.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    wait_for_port(port, proc)
    yield f"http://127.0.0.1:{port}/o"
    stop(proc)


def consumer(server_pool, provider_url: str, trusted: bool) -> str:
    return server_pool.get(
        OIDC_SERVER_URL=provider_url,
        OIDC_CLIENT_ID=CLIENT_ID,
        OIDC_CLIENT_SECRET=CLIENT_SECRET,
        OIDC_NAME="Test IdP",
        OIDC_TRUSTED="true" if trusted else "false",
    )


def social_login(browser, site: str, username: str):
    """Walk the flow in a fresh browser context; return the page where it ends."""
    page = browser.new_context().new_page()
    page.goto(site + "/accounts/login/")
    page.get_by_role("link", name="Test IdP").click()
    page.get_by_role("button", name="Continue").click()  # allauth confirms before leaving the site
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "provider-password")
    page.get_by_role("button", name="Log in to provider").click()
    page.wait_for_load_state("networkidle")
    return page


def signed_in_as(page, site: str) -> str | None:
    response = page.request.get(site + "/api/v1/me/")
    return response.json()["username"] if response.ok else None


@pytest.mark.django_db(transaction=True)
def test_it_creates_the_user_then_signs_the_same_user_in_again(browser, server_pool, oidc_provider):
    site = consumer(server_pool, oidc_provider, trusted=False)
    first = social_login(browser, site, "dana")
    assert signed_in_as(first, site) == "dana"
    first.screenshot(path=str(ARTIFACTS / "oidc-login.png"))
    account = SocialAccount.objects.get(provider="oidc")
    assert account.user.email == "dana@example.com"

    second = social_login(browser, site, "dana")
    assert signed_in_as(second, site) == "dana"
    assert SocialAccount.objects.count() == 1
    assert get_user_model().objects.filter(email="dana@example.com").count() == 1


@pytest.mark.django_db(transaction=True)
def test_an_untrusted_provider_cannot_take_over_a_local_account_by_email(
    browser, server_pool, oidc_provider, make_user
):
    make_user("carol", email="carol@example.com")
    site = consumer(server_pool, oidc_provider, trusted=False)
    page = social_login(browser, site, "carol")
    assert signed_in_as(page, site) is None
    assert not SocialAccount.objects.filter(user__username="carol").exists()
    assert "carol@example.com" in page.content()  # allauth asks to sign in to that account first


@pytest.mark.django_db(transaction=True)
def test_a_trusted_provider_signs_in_to_the_local_account_with_that_email(
    browser, server_pool, oidc_provider, make_user
):
    make_user("carol", email="carol@example.com")
    site = consumer(server_pool, oidc_provider, trusted=True)
    page = social_login(browser, site, "carol")
    assert signed_in_as(page, site) == "carol"
    assert SocialAccount.objects.get(provider="oidc").user.username == "carol"
