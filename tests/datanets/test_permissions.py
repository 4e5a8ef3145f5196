"""The role × action matrix over pages, API and admin, every cell, anonymous included.

EXPECTED is written out by hand from the README's table, not derived from
datanets.access, so a change to the rules must change both.
"""

from __future__ import annotations

import io
import json

import pytest
from django.test import Client

from datanets.access import Action, can, readable_by, trainable_by, visible_to
from tests.factories import alpaca, jsonl

pytestmark = pytest.mark.django_db

ROLES = ["anonymous", "stranger", "viewer", "contributor", "validator", "owner"]
MEMBERS = {"viewer", "contributor", "validator", "owner"}
SIGNED_IN = MEMBERS | {"stranger"}
EVERYONE = SIGNED_IN | {"anonymous"}
EXPECTED = {
    "see": {"public": EVERYONE, "permissioned": EVERYONE, "private": MEMBERS},
    "read": {"public": EVERYONE, "permissioned": MEMBERS, "private": MEMBERS},
    "contribute": {"public": SIGNED_IN, "permissioned": {"contributor", "validator", "owner"},
                   "private": {"contributor", "validator", "owner"}},
    "validate": {v: {"validator", "owner"} for v in ("public", "permissioned", "private")},
    "manage": {v: {"owner"} for v in ("public", "permissioned", "private")},
    "train": {"public": SIGNED_IN, "permissioned": MEMBERS, "private": MEMBERS},
    "request": {"public": {"stranger", "viewer", "contributor"}, "permissioned": {"stranger", "viewer", "contributor"},
                "private": set()},
}  # fmt: skip
SECRET = "Question 3?"  # text of an accepted record


@pytest.fixture
def world(make_datanet, roles, accepted):
    def make(visibility):
        datanet = make_datanet(visibility=visibility)
        people = roles(datanet)
        accepted(datanet, alpaca(5))
        return datanet, {**people, "anonymous": None}

    return make


def client_for(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def check_denied(code: int, visible: bool, anonymous: bool) -> None:
    if not visible:
        assert code in ((302, 401, 404) if anonymous else (404,)), code  # private: never confirm it exists
    else:
        assert code in ((302, 401, 403) if anonymous else (403,)), code


def probe(action: str, datanet, client: Client) -> list[tuple[str, int, bytes]]:
    """(surface, status, body) of every endpoint that exercises `action`."""
    s, api = datanet.slug, f"/api/v1/datanets/{datanet.slug}"
    if action == "see":
        calls = [("page", client.get(f"/datanets/{s}/")), ("api", client.get(f"{api}/"))]
    elif action == "read":
        calls = [
            ("api", client.get(f"{api}/records/")),
            ("export", client.get(f"/datanets/{s}/export.jsonl")),
            ("versions", client.get(f"/datanets/{s}/versions/")),
            ("reputation", client.get(f"/datanets/{s}/reputation/")),
            ("csv", client.get(f"/datanets/{s}/export.csv")),
            ("proof", client.get(f"{api}/verify/")),
        ]
    elif action == "contribute":
        upload = io.BytesIO(jsonl(alpaca(1, start=900)))
        upload.name = "one.jsonl"
        calls = [
            ("page", client.get(f"/datanets/{s}/contribute/")),
            ("api", client.post(f"{api}/uploads/", {"file": upload})),
        ]
    elif action == "validate":
        calls = [("page", client.get(f"/datanets/{s}/moderation/")), ("api", client.get(f"{api}/contributions/"))]
    elif action == "manage":
        calls = [
            ("page", client.get(f"/datanets/{s}/members/")),
            ("edit", client.get(f"/datanets/{s}/edit/")),
            ("api", client.post(f"{api}/members/", json.dumps({"username": "stranger", "role": "viewer"}),
                                content_type="application/json")),
        ]  # fmt: skip
    elif action == "request":
        body = json.dumps({"role": "validator", "message": "hi"})
        calls = [("api", client.post(f"{api}/access-requests/", body, content_type="application/json"))]
    else:
        raise ValueError(action)
    out = []
    for surface, response in calls:
        body = b"".join(response.streaming_content) if response.streaming else response.content
        out.append((surface, response.status_code, body))
    return out


@pytest.mark.parametrize("visibility", ["public", "permissioned", "private"])
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", ["see", "read", "contribute", "validate", "manage", "train", "request"])
def test_the_matrix(world, visibility, role, action):
    datanet, people = world(visibility)
    user = people[role]
    allowed = role in EXPECTED[action][visibility]
    visible = role in EXPECTED["see"][visibility]
    assert can(user, Action[action.upper()], datanet) == allowed
    if action == "train":
        assert (datanet in trainable_by(user)) == allowed
        return
    for surface, code, body in probe(action, datanet, client_for(user)):
        if allowed:
            assert code in (200, 201), (surface, code, body[:300])
            if action == "read" and surface in ("api", "export"):
                assert SECRET.encode() in body
        elif action == "request" and visible and user is not None:
            assert code in (403, 409), (surface, code)  # members who already hold the role, or the owner
        else:
            check_denied(code, visible, user is None)
            assert SECRET.encode() not in body, surface
    if action == "see":
        assert (datanet in visible_to(user)) == allowed
        listing = client_for(user).get("/datanets/").content.decode()
        assert (datanet.name in listing) == allowed
    if action == "read":
        assert (datanet in readable_by(user)) == allowed
        detail = client_for(user).get(f"/datanets/{datanet.slug}/")
        assert (SECRET in detail.content.decode()) == allowed
        api_list = client_for(user).get("/api/v1/datanets/").json()["results"]
        assert (datanet.slug in [d["slug"] for d in api_list]) == allowed


@pytest.mark.parametrize("visibility", ["public", "permissioned", "private"])
@pytest.mark.parametrize("role", ROLES)
def test_the_admin_shows_a_datanet_only_to_its_owner(world, make_user, visibility, role):
    datanet, people = world(visibility)
    user = people[role]
    allowed = role == "owner"
    client = client_for(user)
    changelist = client.get("/admin/datanets/datanet/")
    change = client.get(f"/admin/datanets/datanet/{datanet.pk}/change/")
    contributions = client.get("/admin/datanets/contribution/")
    if allowed:
        assert changelist.status_code == 200 and datanet.name in changelist.content.decode()
        assert change.status_code == 200
        assert contributions.status_code == 200 and "rows.jsonl" in contributions.content.decode()
    else:
        assert changelist.status_code in (302, 403)  # not an admin user: sent to the login page
        assert change.status_code in (302, 403)
        assert datanet.name not in changelist.content.decode()


def test_an_owner_never_sees_another_owners_datanet_in_the_admin(make_datanet, make_user):
    mine = make_datanet(owner=make_user("me"), slug="mine")
    theirs = make_datanet(owner=make_user("them"), slug="theirs", visibility="private")
    client = client_for(mine.owner)
    listing = client.get("/admin/datanets/datanet/").content.decode()
    assert "Mine" in listing and "Theirs" not in listing
    assert client.get(f"/admin/datanets/datanet/{theirs.pk}/change/").status_code in (302, 404)
    assert "Theirs" not in client.get("/admin/datanets/accessrequest/").content.decode()


def test_a_private_datanet_is_a_404_for_outsiders_even_for_requests(make_datanet, make_user):
    datanet = make_datanet(visibility="private")
    client = client_for(make_user("outsider"))
    assert client.post(f"/datanets/{datanet.slug}/request-access/", {"role": "viewer"}).status_code == 404
    assert client.post(f"/api/v1/datanets/{datanet.slug}/access-requests/", {"role": "viewer"}).status_code == 404


def test_only_the_owner_sees_all_access_requests(make_datanet, make_user):
    from datanets import services

    datanet = make_datanet(visibility="permissioned")
    asker, other = make_user("asker"), make_user("other")
    services.request_access(asker, datanet, "viewer", "please")
    services.request_access(other, datanet, "viewer", "me too")
    url = f"/api/v1/datanets/{datanet.slug}/access-requests/"
    assert {r["user"] for r in client_for(datanet.owner).get(url).json()} == {"asker", "other"}
    assert {r["user"] for r in client_for(asker).get(url).json()} == {"asker"}
    assert client_for(None).get(url).json() == []


def test_an_upload_report_is_only_for_its_uploader_and_the_owner(make_datanet, make_user):
    from datanets import services

    datanet = make_datanet()
    author = make_user("author")
    batch = services.start_upload(author, datanet, "mine.jsonl", jsonl(alpaca(1)), {})
    for user, ok in ((author, True), (datanet.owner, True), (make_user("nosy"), False)):
        page = client_for(user).get(f"/datanets/{datanet.slug}/uploads/{batch.pk}/")
        api = client_for(user).get(f"/api/v1/datanets/{datanet.slug}/uploads/{batch.pk}/")
        assert (page.status_code == 200, api.status_code == 200) == (ok, ok)
        assert ("mine.jsonl" in page.content.decode()) == ok


def test_an_owner_signs_in_to_the_admin_through_the_site_login(make_datanet, make_user):
    from tests.helpers import PASSWORD

    mine = make_datanet(owner=make_user("me"), slug="mine")
    make_datanet(owner=make_user("them"), slug="theirs")
    client = Client()
    sent = client.get("/admin/login/?next=/admin/")
    assert sent.status_code == 302 and sent["Location"] == "/accounts/login/?next=%2Fadmin%2F"
    response = client.post(sent["Location"], {"login": "me", "password": PASSWORD}, follow=True)
    assert response.status_code == 200 and "Datanets" in response.content.decode()
    listing = client.get("/admin/datanets/datanet/").content.decode()
    assert mine.name in listing and "Theirs" not in listing
    stranger = Client()
    stranger.force_login(make_user("nobody"))
    assert stranger.get("/admin/login/?next=/admin/").status_code == 403  # signed in, but no admin rights


def test_admin_actions_approve_requests_and_accept_contributions(make_datanet, make_user):
    from datanets import services
    from datanets.models import AccessRequest, Contribution

    datanet = make_datanet(visibility="permissioned")
    asker, contributor = make_user("asker"), make_user("contrib")
    services.set_member(datanet.owner, datanet, contributor, "contributor")
    req = services.request_access(asker, datanet, "viewer")
    services.start_upload(contributor, datanet, "c.jsonl", jsonl(alpaca(2)), {})
    client = client_for(datanet.owner)
    client.post("/admin/datanets/accessrequest/", {"action": "approve_requests", "_selected_action": [req.pk]})
    assert AccessRequest.objects.get(pk=req.pk).status == "approved"
    ids = list(Contribution.objects.values_list("pk", flat=True))
    client.post("/admin/datanets/contribution/", {"action": "accept_contributions", "_selected_action": ids})
    assert set(Contribution.objects.values_list("status", flat=True)) == {"accepted"}
    assert datanet.versions.get().size == 2
    other = make_datanet(owner=make_user("them"), slug="theirs", review_policy="votes")
    foreign = services.start_upload(other.owner, other, "f.jsonl", jsonl(alpaca(1, start=70)), {}).rows.get()
    client.post("/admin/datanets/contribution/", {"action": "reject_contributions", "_selected_action": [foreign.pk]})
    assert Contribution.objects.get(pk=foreign.pk).status == "pending"  # not theirs: out of the queryset
