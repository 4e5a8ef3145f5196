"""The record page behind citation links, and a Datanet page without dead ends."""

from __future__ import annotations

import pytest
from django.test import Client

from datanets import services
from datanets.models import Contribution, Membership
from datanets.seed import seed_datanets
from tests.factories import alpaca, jsonl

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.mark.parametrize("visibility", ["public", "permissioned", "private"])
def test_an_accepted_record_is_shown_only_to_its_readers(make_datanet, roles, visibility):
    datanet = make_datanet(visibility=visibility)
    people = roles(datanet)
    rows = alpaca(3)
    rows[1]["input"] = "Clause 7 of the lease"
    services.start_upload(datanet.owner, datanet, "r.jsonl", jsonl(rows), {})
    record = Contribution.objects.get(source_row=2)
    url = f"/datanets/{datanet.slug}/records/{record.pk}/"
    outsiders = {"stranger", None} if visibility == "public" else set()
    readers = {"owner", "viewer", "contributor", "validator"} | outsiders
    for who in ("owner", "viewer", "contributor", "validator", "stranger", None):
        response = client_for(people.get(who)).get(url)
        if who in readers:
            page = response.content.decode()
            assert response.status_code == 200 and "Clause 7 of the lease" in page
            assert "<dt>Input</dt>" in page and "{&#x27;" not in page  # labelled fields, not a dict
            assert "Entry 2 of 3, first included in version 1" in page and "cannot be changed without it" in page
        else:
            assert response.status_code == 404 and b"Clause 7" not in response.content
    other = make_datanet(slug="elsewhere", owner=people["stranger"])
    assert client_for(people["stranger"]).get(f"/datanets/{other.slug}/records/{record.pk}/").status_code == 404


def test_a_record_under_review_is_for_its_contributor_and_validators(make_datanet, roles):
    datanet = make_datanet()
    people = roles(datanet)
    batch = services.start_upload(people["contributor"], datanet, "p.jsonl", jsonl(alpaca(1)), {})
    url = f"/datanets/{datanet.slug}/records/{batch.rows.get().pk}/"
    for who, code in (("contributor", 200), ("validator", 200), ("owner", 200), ("viewer", 404), ("stranger", 404)):
        assert client_for(people[who]).get(url).status_code == code, who
    page = client_for(people["contributor"]).get(url).content.decode()
    assert "waiting for 1 validator vote" in page and "Not in the log" in page


def test_the_datanet_page_offers_training_and_the_admin_without_dead_ends(make_datanet, make_user):
    datanet = make_datanet(visibility="permissioned")
    owner_page = client_for(datanet.owner).get(f"/datanets/{datanet.slug}/").content.decode()
    assert f'href="/training/new/?datanet={datanet.slug}"' in owner_page
    assert f'href="/admin/datanets/datanet/{datanet.pk}/change/"' in owner_page
    viewer = make_user("vic")
    Membership.objects.create(datanet=datanet, user=viewer, role="viewer")
    viewer_page = client_for(viewer).get(f"/datanets/{datanet.slug}/").content.decode()
    assert "Train on this" in viewer_page and "Manage in admin" not in viewer_page
    outsider_page = client_for(make_user("otto")).get(f"/datanets/{datanet.slug}/").content.decode()
    assert "Train on this" not in outsider_page and "Request access" in outsider_page


def test_the_demo_datanet_never_tells_its_owner_to_ask_for_access(make_user):
    owner = make_user("demo")
    _, clinic = seed_datanets(owner)
    page = client_for(owner).get(f"/datanets/{clinic.slug}/").content.decode().lower()
    assert "ask the owner" not in page and "request access" not in page
    outsider = client_for(make_user("newcomer")).get(f"/datanets/{clinic.slug}/").content.decode().lower()
    assert "ask the owner" in outsider
