"""Private Datanet names do not leak: after a member is removed from a private Datanet, their own
job and model payloads no longer name it (slug, size, root); member lists of public Datanets are
for members."""

from __future__ import annotations

import pytest

from datanets import services as datanet_services
from datanets.models import Role
from tests.helpers import api_client as api_for
from tests.training.jobs import finished_job

pytestmark = pytest.mark.django_db


def test_a_removed_member_no_longer_sees_the_datanet_in_job_or_model_payloads(
    make_datanet, make_user, accepted, base_model, tmp_path
):
    owner, viewer = make_user("owner"), make_user("viewer")
    datanet = make_datanet(owner=owner, slug="secret-cases", visibility="private")
    accepted(datanet, [{"instruction": "Q?", "output": "A."}])
    datanet_services.set_member(owner, datanet, viewer, Role.VIEWER)
    job = finished_job(viewer, base_model, datanet, tmp_path)
    api = api_for(viewer)
    assert api.get(f"/api/v1/training/jobs/{job.pk}/").json()["datanets"][0]["slug"] == "secret-cases"
    datanet_services.remove_member(owner, datanet, viewer)
    for url in (f"/api/v1/training/jobs/{job.pk}/", "/api/v1/training/jobs/", f"/api/v1/models/{job.model_id}/"):
        body = api.get(url).content.decode()
        assert "secret-cases" not in body and datanet.current_version.root not in body, url


def test_member_lists_of_public_datanets_are_for_members(make_datanet, make_user):
    owner, member, stranger = make_user("owner"), make_user("member"), make_user("stranger")
    datanet = make_datanet(owner=owner, slug="open-data", visibility="public")
    datanet_services.set_member(owner, datanet, member, Role.CONTRIBUTOR)
    everyone = [{"username": "owner", "role": "owner"}, {"username": "member", "role": "contributor"}]
    for who, expected in ((None, everyone[:1]), (stranger, everyone[:1]), (member, everyone), (owner, everyone)):
        assert api_for(who).get("/api/v1/datanets/open-data/members/").json() == expected


def test_a_taken_address_is_only_said_to_be_taken_to_those_who_may_see_it(make_datanet, make_user):
    owner, stranger = make_user("owner"), make_user("stranger")
    make_datanet(owner=owner, slug="hidden-plans", visibility="private")
    make_datanet(owner=owner, slug="open-plans", visibility="public")
    body = {"name": "Hidden plans", "licence": "CC0-1.0", "visibility": "public", "schema": "instruction"}
    created = api_for(stranger).post("/api/v1/datanets/", body, format="json")
    assert created.status_code == 201 and created.json()["slug"].startswith("hidden-plans-")  # not "taken"
    assert len(created.json()["slug"]) == len("hidden-plans-") + 4
    visible = api_for(stranger).post("/api/v1/datanets/", {**body, "name": "Open plans"}, format="json")
    assert visible.status_code == 409 and "is taken" in visible.json()["detail"]  # one they can see anyway
    assert api_for(owner).post("/api/v1/datanets/", body, format="json").status_code == 409
