"""Anchoring Datanet version and reward-epoch roots on the (in-process) chain: PENDING →
ANCHORED, idempotent retries, a down or refusing chain, verification against the database."""

from __future__ import annotations

import socket
import sys

import pytest

from attribution import anchoring
from attribution.engine.chain import ChainRejected, ChainUnavailable
from attribution.models import Anchor
from datanets.demo_data import demo_records
from datanets.models import Contribution

pytestmark = pytest.mark.django_db


@pytest.fixture
def version_anchor(make_datanet, accepted):
    datanet = make_datanet(slug="anchored")
    accepted(datanet, demo_records()[:5])
    anchor = Anchor.objects.get(version=datanet.current_version)
    assert anchor.status == Anchor.Status.PENDING and anchor.root == datanet.current_version.root
    return anchor


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_it_anchors_a_version_root_and_verifies_it(version_anchor, client):
    limit = sys.getrecursionlimit()
    anchor = anchoring.attempt(version_anchor.pk)
    # py-evm raises the limit to 100,000 on import; a hostile nested JSON upload would then segfault
    assert sys.getrecursionlimit() == limit
    assert anchor.status == Anchor.Status.ANCHORED and anchor.tx_hash.startswith("0x") and anchor.block_number
    result = anchoring.verify(anchor)
    assert result["ok"], result["problems"]
    assert result["chain_root"] == result["recomputed_root"] == anchor.root
    body = client.get(f"/api/v1/anchors/{anchor.pk}/").json()
    assert body["status"] == "anchored" and body["verification"]["ok"] is True
    assert "Verified" in client.get(f"/attribution/anchors/{anchor.pk}/").content.decode()
    by_root = client.get(f"/api/v1/anchors/verify/?root={anchor.root}").json()
    assert by_root["id"] == anchor.pk and by_root["verification"]["ok"]


def test_a_second_attempt_sends_nothing_new(version_anchor):
    first = anchoring.attempt(version_anchor.pk)
    Anchor.objects.filter(pk=first.pk).update(status=Anchor.Status.PENDING)  # as if the worker died before saving
    again = anchoring.attempt(first.pk)
    assert again.status == Anchor.Status.ANCHORED and again.tx_hash == first.tx_hash and again.nonce == first.nonce


def test_editing_a_stored_record_fails_verification(version_anchor, client):
    anchor = anchoring.attempt(version_anchor.pk)
    row = Contribution.objects.filter(datanet=anchor.version.datanet).first()
    Contribution.objects.filter(pk=row.pk).update(content={**row.content, "output": "Tampered."})
    result = anchoring.verify(anchor)
    assert not result["ok"] and result["recomputed_root"] != anchor.root
    assert result["chain_root"] == anchor.root  # the chain still holds the honest root
    assert any("changed" in p for p in result["problems"])
    body = client.get(f"/api/v1/anchors/{anchor.pk}/").json()
    assert body["verification"]["ok"] is False
    assert "Not verified" in client.get(f"/attribution/anchors/{anchor.pk}/").content.decode()


def test_a_down_chain_leaves_the_anchor_pending_until_it_is_back(version_anchor, settings, client):
    settings.CHAIN_RPC_URL = f"http://127.0.0.1:{closed_port()}"
    settings.CHAIN_TIMEOUT = 1
    with pytest.raises(ChainUnavailable):
        anchoring.attempt(version_anchor.pk)
    pending = Anchor.objects.get(pk=version_anchor.pk)
    assert pending.status == "pending" and pending.attempts == 1 and "not reachable" in pending.last_error
    body = client.get(f"/api/v1/anchors/{pending.pk}/").json()
    assert body["status"] == "pending" and body["verification"]["ok"] is False and "not reachable" in body["last_error"]
    settings.CHAIN_RPC_URL = None  # the chain is back
    assert anchoring.attempt(pending.pk).status == "anchored"


def test_a_refused_transaction_leaves_the_anchor_pending(version_anchor, settings):
    settings.CHAIN_PRIVATE_KEY = "0x" + "42" * 32  # a valid key with no funds
    with pytest.raises(ChainRejected):
        anchoring.attempt(version_anchor.pk)
    row = Anchor.objects.get(pk=version_anchor.pk)
    assert row.status == "pending" and row.last_error


def test_verifying_a_root_that_does_not_exist(client, version_anchor):
    assert client.get("/api/v1/anchors/verify/?root=" + "ab" * 32).status_code == 404
    assert client.get("/api/v1/anchors/verify/?root=xyz").status_code == 400
    assert client.get("/api/v1/anchors/verify/").status_code == 400
    assert client.get("/api/v1/anchors/999999/").status_code == 404
    assert client.get("/api/v1/anchors/abc/").status_code == 404
    assert client.get("/attribution/anchors/999999/").status_code == 404


def test_private_datanet_roots_stay_hidden_from_outsiders(make_datanet, accepted, client, other_user, make_user):
    datanet = make_datanet(slug="hidden", visibility="private")
    accepted(datanet, demo_records()[:3])
    anchor = Anchor.objects.get(version__datanet=datanet)
    for who in (None, other_user):
        client.logout()
        if who:
            client.force_login(who)
        assert all(a["id"] != anchor.pk for a in client.get("/api/v1/anchors/").json())
        assert client.get(f"/api/v1/anchors/{anchor.pk}/").status_code == 404
        assert client.get(f"/api/v1/anchors/verify/?root={anchor.root}").status_code == 404
        assert client.get(f"/attribution/anchors/{anchor.pk}/").status_code == 404
        assert anchor.root not in client.get("/attribution/anchors/").content.decode()
    client.force_login(datanet.owner)
    assert client.get(f"/api/v1/anchors/{anchor.pk}/").status_code == 200
