"""The owner's review policy: a one-person Datanet is usable at once; self-votes never count."""

from __future__ import annotations

import io
from html import unescape

import pytest
from django.test import Client
from rest_framework.test import APIClient

from datanets import services
from datanets.access import trainable_by
from datanets.models import Contribution, Membership, Role
from tests.factories import alpaca, jsonl

pytestmark = pytest.mark.django_db


def test_a_one_person_private_datanet_accepts_its_owners_upload_at_once(make_datanet):
    datanet = make_datanet(visibility="private")
    batch = services.start_upload(datanet.owner, datanet, "mine.jsonl", jsonl(alpaca(4)), {})
    assert batch.status == "succeeded" and "accepted and added to version 1" in batch.message
    assert set(batch.rows.values_list("status", flat=True)) == {"accepted"}
    assert datanet in trainable_by(datanet.owner)
    version = datanet.current_version
    assert (version.number, version.size) == (1, 4) and services.verify(datanet) == []
    assert sorted(batch.rows.values_list("log_index", flat=True)) == [0, 1, 2, 3]
    assert datanet.standings.get(user=datanet.owner).accepted == 4


def test_a_contributors_upload_still_waits_for_a_validator(make_datanet, roles):
    datanet = make_datanet()
    people = roles(datanet)
    batch = services.start_upload(people["contributor"], datanet, "c.jsonl", jsonl(alpaca(2)), {})
    assert set(batch.rows.values_list("status", flat=True)) == {"pending"}
    assert "added for review" in batch.message and not datanet.versions.exists()


def test_with_two_votes_needed_the_owners_vote_does_not_count(make_datanet, make_user):
    datanet = make_datanet(visibility="private", review_policy="votes", review_votes=2)
    batch = services.start_upload(datanet.owner, datanet, "mine.jsonl", jsonl(alpaca(1)), {})
    row = batch.rows.get()
    assert (row.status, row.needs_votes) == ("pending", 2)
    with pytest.raises(services.DatanetError, match="would not count"):
        services.vote(datanet.owner, row, "accept")
    assert not row.validations.exists()
    v1, v2 = make_user("v1"), make_user("v2")
    for v in (v1, v2):
        Membership.objects.create(datanet=datanet, user=v, role=Role.VALIDATOR)
    assert services.vote(v1, row, "accept").status == "pending"
    assert services.vote(v2, row, "accept").status == "accepted"
    row.refresh_from_db()
    assert row.log_index == 0 and datanet.current_version.size == 1 and services.verify(datanet) == []


def test_the_upload_page_and_api_say_who_decides(make_datanet, make_user):
    datanet = make_datanet(visibility="private", review_policy="votes", review_votes=2)
    client = Client()
    client.force_login(datanet.owner)
    page = unescape(client.get(f"/datanets/{datanet.slug}/contribute/").content.decode())
    assert "Every upload waits for 2 validator votes, the owner's too." in page
    assert "nobody besides you can vote" in page and "add validators under" in page
    Membership.objects.create(datanet=datanet, user=make_user("vera"), role=Role.VALIDATOR)
    page = unescape(client.get(f"/datanets/{datanet.slug}/contribute/").content.decode())
    assert "each needs 2 accepting votes from a validator other than you (vera)" in page
    api = APIClient()
    api.force_authenticate(datanet.owner)
    f = io.BytesIO(jsonl(alpaca(1)))
    f.name = "one.jsonl"
    body = api.post(f"/api/v1/datanets/{datanet.slug}/uploads/", {"file": f}, format="multipart").json()
    assert body["rows_added"] == 1 and "wait for review" in body["next_steps"] and "vera" in body["next_steps"]


def test_the_owner_chooses_the_policy_in_the_form_and_the_api(make_datanet):
    datanet = make_datanet()
    client = Client()
    client.force_login(datanet.owner)
    form = {"name": datanet.name, "description": "", "domain_tags": "", "licence": "CC-BY-4.0",
            "visibility": "public", "review_policy": "votes", "review_votes": "3"}  # fmt: skip
    assert client.post(f"/datanets/{datanet.slug}/edit/", form).status_code == 302
    datanet.refresh_from_db()
    assert (datanet.review_policy, datanet.review_votes) == ("votes", 3)
    too_many = client.post(f"/datanets/{datanet.slug}/edit/", {**form, "review_votes": "9"})
    assert too_many.status_code == 400 and "less than or equal to 5" in too_many.content.decode()
    api = APIClient()
    api.force_authenticate(datanet.owner)
    changed = api.patch(f"/api/v1/datanets/{datanet.slug}/", {"review_policy": "trusted"}, format="json")
    assert changed.status_code == 200 and changed.json()["review_policy"] == "trusted"
    bad = api.patch(f"/api/v1/datanets/{datanet.slug}/", {"review_votes": 0}, format="json")
    assert bad.status_code == 400 and "review_votes" in bad.json()
    assert Contribution.objects.count() == 0
