"""The signed-in home: only the person's own Datanets, jobs and models; the get-started checklist;
navigation without dead ends; the API guide and the way back from the Swagger page."""

from __future__ import annotations

import uuid

import pytest
from django.test.utils import CaptureQueriesContext

from datanets.models import Membership, Role
from serving.models import Conversation
from tests import factories
from training.models import BaseModel, TrainingJob

pytestmark = pytest.mark.django_db


def _job(owner, name, status="queued", **extra) -> TrainingJob:
    base = BaseModel.objects.get_or_create(source="tiny/base", defaults={"name": "Tiny", "methods": ["lora"]})[0]
    return TrainingJob.objects.create(owner=owner, name=name, base_model=base, config={}, status=status,
                                      request_key=uuid.uuid4().hex, **extra)  # fmt: skip


def _steps(response) -> list[bool]:
    return [step["done"] for step in response.context["steps"]]


def test_it_shows_the_landing_page_to_visitors(client):
    response = client.get("/")
    assert response.status_code == 200
    assert b"Create an account" in response.content and b"My Datanets" not in response.content
    assert b"processor (CPU)" in response.content  # says plainly where jobs run


def test_it_shows_only_my_own_datanets_jobs_and_models(client, user, other_user, accepted):
    mine = factories.datanet(user, slug="my-law", visibility="private")
    joined = factories.datanet(other_user, slug="joined-med", visibility="permissioned")
    Membership.objects.create(datanet=joined, user=user, role=Role.VALIDATOR)
    factories.datanet(other_user, slug="bobs-secret", visibility="private")
    factories.datanet(other_user, slug="bobs-public", visibility="public")
    accepted(mine, factories.alpaca(3))
    _job(user, "alice-running", status="running", progress=0.42)
    _job(user, "alice-done", status="succeeded", adapter_dir="/tmp/alice-adapter")
    _job(other_user, "bob-secret-job")
    _job(other_user, "bob-model", status="succeeded", adapter_dir="/tmp/bob-adapter")

    client.force_login(user)
    response = client.get("/")
    page = response.content.decode()

    assert {d.slug for d in response.context["datanets"]} == {"my-law", "joined-med"}
    assert "bobs-secret" not in page and "Bobs Secret" not in page and "Bobs Public" not in page
    assert [j.name for j in response.context["jobs"]] == ["alice-done", "alice-running"]
    assert "bob-secret-job" not in page and "bob-model" not in page
    assert "42%" in page
    done = TrainingJob.objects.get(name="alice-done")
    assert [m.id for m in response.context["models"]] == [done.model_id]
    assert f'href="/chat/{done.model_id}/"' in page and f'href="/api/v1/models/{done.model_id}/export/"' in page
    by_slug = {d.slug: d for d in response.context["datanets"]}
    assert (by_slug["my-law"].records, by_slug["my-law"].my_role) == (3, "Owner")
    assert by_slug["joined-med"].my_role == "Validator"


def test_pending_reviews_are_counted_and_link_to_moderation_for_reviewers(client, user, other_user):
    from datanets import services

    net = factories.datanet(user, slug="reviewed")
    services.start_upload(other_user, net, "rows.jsonl", factories.jsonl(factories.alpaca(2)), {})
    client.force_login(user)
    response = client.get("/")
    assert response.context["datanets"][0].pending == 2
    assert b'href="/datanets/reviewed/moderation/">2 waiting for review' in response.content


def test_a_brand_new_account_sees_the_three_steps_none_done(client, user):
    client.force_login(user)
    response = client.get("/")
    page = response.content.decode()
    assert _steps(response) == [False, False, False]
    for title in ("Create or join a Datanet and add data", "Train a model", "Chat with it"):
        assert title in page
    assert "No training jobs yet" in page and "You are not in any Datanet yet" in page


def test_the_checklist_ticks_steps_as_they_are_done_and_goes_away(client, user, accepted):
    client.force_login(user)
    mine = factories.datanet(user, slug="mine")
    response = client.get("/")
    assert _steps(response) == [False, False, False]
    assert response.context["steps"][0]["link"] == "/datanets/mine/contribute/"  # empty: add records next
    accepted(mine, factories.alpaca(2))
    assert _steps(client.get("/")) == [True, False, False]

    running = _job(user, "first", status="running")
    response = client.get("/")
    assert _steps(response) == [True, False, False]
    assert response.context["steps"][1]["link"] == "/training/jobs/"  # points at the running job

    TrainingJob.objects.filter(pk=running.pk).update(status="succeeded", adapter_dir="/tmp/a")
    assert _steps(client.get("/")) == [True, True, False]

    Conversation.objects.create(user=user, model_id=running.model_id)
    response = client.get("/")
    assert response.context["all_done"] and b'data-testid="get-started"' not in response.content


def test_the_home_needs_the_same_queries_for_one_or_many_rows(client, user, other_user):
    from django.db import connection

    client.force_login(user)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/").status_code == 200
        return len(captured)

    factories.datanet(user, slug="one")
    _job(user, "one", status="succeeded", adapter_dir="/tmp/one")
    few = queries()
    for i in range(6):
        net = factories.datanet(other_user, slug=f"many-{i}", visibility="private")
        Membership.objects.create(datanet=net, user=user, role=Role.CONTRIBUTOR)
        _job(user, f"many-{i}", status="succeeded", adapter_dir=f"/tmp/many-{i}")
    assert queries() == few


@pytest.mark.parametrize("staff", [False, True])
def test_every_nav_and_footer_link_answers_for_a_signed_in_person(client, make_user, staff):
    import re

    person = make_user("carol", is_staff=staff)
    factories.datanet(person, slug="carols")  # an owner gets the scoped admin
    client.force_login(person)
    page = client.get("/").content.decode()
    nav = re.search(r'<nav class="mainnav".*?</nav>', page, re.S).group(0)
    footer = re.search(r"<footer.*?</footer>", page, re.S).group(0)
    links = re.findall(r'href="([^"]+)"', nav + footer)
    assert {"/training/jobs/", "/api/", "/admin/"} <= set(links)
    for href in links:
        assert client.get(href).status_code == 200, href


def test_the_admin_link_shows_only_to_staff_and_datanet_owners(client, user, other_user):
    client.force_login(user)
    assert b'href="/admin/"' not in client.get("/").content
    net = factories.datanet(other_user, slug="co-owned")
    Membership.objects.create(datanet=net, user=user, role=Role.OWNER)
    assert b'href="/admin/"' in client.get("/").content


def test_the_api_guide_names_the_openai_endpoints_and_how_to_get_a_key(client, user):
    page = client.get("/api/").content.decode()
    assert "/v1/models" in page and "/v1/chat/completions" in page
    assert "http://testserver/v1" in page and 'href="/api/docs/"' in page
    assert "sign in" in page  # a visitor is told to sign in before the profile page
    client.force_login(user)
    assert 'href="/accounts/profile/"' in client.get("/api/").content.decode()


def test_the_swagger_page_has_a_way_back_to_the_site(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "← Back to ModelFactory" in page and 'href="/api/"' in page and 'id="swagger-ui"' in page
