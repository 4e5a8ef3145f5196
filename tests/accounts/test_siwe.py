"""Sign-In with Ethereum: nonces are single use and every bad message is refused clearly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from siwe import SiweMessage

from accounts.models import SiweNonce, Wallet

pytestmark = pytest.mark.django_db
DOMAIN = "testserver"


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def new_nonce(client) -> str:
    response = client.post("/accounts/wallet/nonce/")
    assert response.status_code == 200
    return response.json()["nonce"]


def signed(account, nonce: str, *, domain: str = DOMAIN, expires_in: int = 300, signer=None, chain_id=1) -> dict:
    now = datetime.now(UTC)
    message = SiweMessage(
        domain=domain,
        address=account.address,
        statement="Sign in to ModelFactory.",
        uri=f"http://{domain}/",
        version="1",
        chain_id=chain_id,
        nonce=nonce,
        issued_at=iso(now - timedelta(seconds=expires_in + 60) if expires_in < 0 else now),
        expiration_time=iso(now + timedelta(seconds=expires_in)),
    ).prepare_message()
    signature = (signer or account).sign_message(encode_defunct(text=message)).signature.to_0x_hex()
    return {"message": message, "signature": signature}


def post(client, url: str, payload) -> tuple[int, dict]:
    body = payload if isinstance(payload, str | bytes) else json.dumps(payload)
    response = client.post(url, body, content_type="application/json")
    return response.status_code, response.json()


def test_it_signs_in_a_new_wallet_and_creates_its_account(client):
    account = Account.create()
    status, body = post(client, "/accounts/wallet/login/", signed(account, new_nonce(client)))
    assert status == 200, body
    wallet = Wallet.objects.get(address=account.address)
    assert client.get("/api/v1/me/").json()["username"] == wallet.user.username


def test_it_links_a_wallet_and_signs_in_to_that_account(client, user):
    account = Account.create()
    client.force_login(user)
    status, body = post(client, "/accounts/wallet/link/", signed(account, new_nonce(client)))
    assert status == 200, body
    assert Wallet.objects.get(address=account.address).user == user
    client.logout()
    status, body = post(client, "/accounts/wallet/login/", signed(account, new_nonce(client)))
    assert status == 200, body
    assert body["username"] == "alice"


def test_it_refuses_a_replayed_message(client):
    account = Account.create()
    payload = signed(account, new_nonce(client))
    assert post(client, "/accounts/wallet/login/", payload)[0] == 200
    client.logout()
    status, body = post(client, "/accounts/wallet/login/", payload)
    assert status == 400
    assert "already used" in body["error"]


def test_it_refuses_a_message_for_another_domain(client):
    status, body = post(
        client, "/accounts/wallet/login/", signed(Account.create(), new_nonce(client), domain="evil.example")
    )
    assert status == 400
    assert "made for 'evil.example'" in body["error"]


def test_a_wallet_on_a_chain_with_a_large_id_is_linked_and_an_impossible_id_refused(client):
    account = Account.create()
    status, body = post(client, "/accounts/wallet/login/", signed(account, new_nonce(client), chain_id=131277322940537))
    assert status == 200, body
    assert Wallet.objects.get(address=account.address).chain_id == 131277322940537  # more than 32 bits
    status, body = post(client, "/accounts/wallet/login/", signed(Account.create(), new_nonce(client), chain_id=2**64))
    assert status == 400 and "chain ID" in body["error"]


def test_it_refuses_a_nonce_it_never_issued(client):
    status, body = post(client, "/accounts/wallet/login/", signed(Account.create(), "madeUpNonce123"))
    assert status == 400
    assert "not issued by this site" in body["error"]
    assert not Wallet.objects.exists()


def test_it_refuses_an_expired_message(client):
    status, body = post(client, "/accounts/wallet/login/", signed(Account.create(), new_nonce(client), expires_in=-5))
    assert status == 400
    assert "expired" in body["error"]


def test_it_refuses_an_expired_nonce(client):
    nonce = new_nonce(client)
    SiweNonce.objects.filter(nonce=nonce).update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    status, body = post(client, "/accounts/wallet/login/", signed(Account.create(), nonce))
    assert status == 400
    assert "expired" in body["error"]


def test_it_refuses_a_signature_from_another_key_and_keeps_the_nonce(client):
    account, intruder = Account.create(), Account.create()
    nonce = new_nonce(client)
    status, body = post(client, "/accounts/wallet/login/", signed(account, nonce, signer=intruder))
    assert status == 400
    assert "does not match the address" in body["error"]
    assert SiweNonce.objects.get(nonce=nonce).used_at is None  # a forgery does not burn the real user's nonce
    assert not Wallet.objects.exists()


@pytest.mark.parametrize(
    "payload, text",
    [
        ("not json", "must be JSON"),
        ("[1, 2]", "JSON object"),
        ({"message": "hello", "signature": "0x" + "ab" * 65}, "not a valid Sign-In with Ethereum message"),
        ({"message": "x", "signature": "zz"}, "65-byte hex"),
        ({}, "Send the signed message"),
        ({"message": "a" * 5000, "signature": "0x" + "ab" * 65}, "too long"),
    ],
)
def test_it_answers_malformed_requests_with_a_clear_400(client, payload, text):
    status, body = post(client, "/accounts/wallet/login/", payload)
    assert status == 400
    assert text in body["error"]


def test_it_refuses_to_link_without_a_session(client):
    status, body = post(client, "/accounts/wallet/link/", signed(Account.create(), new_nonce(client)))
    assert status == 401
    assert "Sign in first" in body["error"]


def test_it_refuses_to_link_a_wallet_owned_by_someone_else(client, user, other_user):
    account = Account.create()
    Wallet.objects.create(user=other_user, address=account.address)
    client.force_login(user)
    status, body = post(client, "/accounts/wallet/link/", signed(account, new_nonce(client)))
    assert status == 409
    assert "another account" in body["error"]
    assert Wallet.objects.get(address=account.address).user == other_user


def test_it_hands_back_a_checksummed_address_with_the_nonce(client):
    account = Account.create()
    response = client.post(
        "/accounts/wallet/nonce/", json.dumps({"address": account.address.lower()}), content_type="application/json"
    )
    assert response.json()["address"] == account.address
    bad = client.post("/accounts/wallet/nonce/", json.dumps({"address": "0x123"}), content_type="application/json")
    assert bad.status_code == 400


def test_it_only_accepts_post(client):
    assert client.get("/accounts/wallet/login/").status_code == 405


def test_nonces_are_rate_limited_per_address(client, settings):
    settings.ACCOUNT_RATE_LIMITS = {"siwe_nonce": "20/m/ip"}  # the deployed limit (tests turn limits off)
    codes = [client.post("/accounts/wallet/nonce/").status_code for _ in range(25)]
    assert codes[:20] == [200] * 20 and set(codes[20:]) == {429}
    refused = client.post("/accounts/wallet/nonce/")
    assert refused["Retry-After"] == "60" and "wait a minute" in refused.json()["error"]
    assert SiweNonce.objects.count() == 20  # a refused request stores nothing
