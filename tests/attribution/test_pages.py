"""Record attribution pages and API, model attribution, admin: nobody without the right sees a thing."""

from __future__ import annotations

import pytest

from attribution.models import ContributionInfluence, TrainingAttribution
from datanets.models import Contribution, Membership

pytestmark = pytest.mark.django_db


@pytest.fixture
def scored(corpus, trained_model):
    run = TrainingAttribution.objects.create(job=trained_model, status="succeeded", method="tracin-lora")
    for row in Contribution.objects.filter(datanet__in=[corpus["public"], corpus["private"]]):
        ContributionInfluence.objects.create(run=run, contribution=row, score=0.01 * row.pk)
    return run


def secret_row(corpus) -> Contribution:
    return Contribution.objects.get(datanet=corpus["private"])


def test_the_model_owner_sees_scores_of_readable_records_only(scored, corpus, user, client):
    client.force_login(user)
    url = f"/api/v1/models/mf-{scored.job_id}/attribution/"
    body = client.get(url).json()
    assert body["method"] == "tracin-lora" and {s["datanet"] for s in body["scores"]} == {"glossary", "secret-lab"}
    Membership.objects.filter(datanet=corpus["private"], user=user).delete()
    assert client.get(url).status_code == 404  # by default a model is blocked once its trainer loses access
    corpus["private"].models_after_removal = "allow"  # the owner lets models outlive access
    corpus["private"].save()
    body = client.get(url).json()
    assert {s["datanet"] for s in body["scores"]} == {"glossary"}
    assert len(body["scores"]) == Contribution.objects.filter(datanet=corpus["public"]).count()


def test_a_record_page_and_api_need_read_access(scored, corpus, user, other_user, client):
    row = secret_row(corpus)
    client.force_login(user)
    assert "quorvex" in client.get(f"/attribution/records/{row.pk}/").content.decode()
    api = client.get(f"/api/v1/contributions/{row.pk}/").json()
    assert api["models"][0]["model"] == f"mf-{scored.job_id}"
    for who in (other_user, None):
        client.logout()
        if who:
            client.force_login(who)
        assert client.get(f"/attribution/records/{row.pk}/").status_code == 404
        assert client.get(f"/api/v1/contributions/{row.pk}/").status_code == 404
    client.force_login(corpus["dave"])  # the contributor sees their record, not alice's private model
    api = client.get(f"/api/v1/contributions/{row.pk}/").json()
    assert api["models"] == []
    assert client.get("/api/v1/contributions/abc/").status_code == 404


def test_my_contributions_page_lists_only_mine(scored, corpus, client):
    client.force_login(corpus["dave"])
    page = client.get("/attribution/me/").content.decode()
    assert "quorvex" in page and "Answers influenced" in page
    client.force_login(corpus["carol"])
    assert "quorvex" not in client.get("/attribution/me/").content.decode()


def test_the_admin_shows_attribution_rows_to_staff_only(scored, corpus, client, make_user):
    owner = corpus["private"].owner  # a Datanet owner may use the admin for their Datanet, not for attribution
    client.force_login(owner)
    assert client.get("/admin/attribution/anchor/").status_code in (302, 403)
    assert client.get("/admin/attribution/rewardentry/").status_code in (302, 403)
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    assert client.get("/admin/attribution/anchor/").status_code == 200
    assert client.get("/admin/attribution/trainingattribution/").status_code == 200
