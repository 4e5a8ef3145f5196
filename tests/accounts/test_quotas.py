"""Per-person limits: the deployment's default unless staff set another for that person in the admin;
staff have none; only staff can see or change the overrides; "when it frees" is computed from the
rolling day."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts import quotas
from accounts.models import QuotaOverride

pytestmark = pytest.mark.django_db


def test_a_limit_is_the_setting_unless_staff_set_one_for_that_person(user, other_user, make_user, settings):
    settings.UPLOAD_ROWS_PER_DAY = 1000
    assert quotas.limit(user, "UPLOAD_ROWS_PER_DAY") == 1000
    QuotaOverride.objects.create(user=user, name="UPLOAD_ROWS_PER_DAY", value=50_000)
    assert quotas.limit(user, "UPLOAD_ROWS_PER_DAY") == 50_000
    assert quotas.limit_for_id(user.pk, "UPLOAD_ROWS_PER_DAY") == 50_000
    assert quotas.limit(other_user, "UPLOAD_ROWS_PER_DAY") == 1000  # only that person
    assert quotas.limit(make_user("staffer", is_staff=True), "UPLOAD_ROWS_PER_DAY") is None
    with pytest.raises(KeyError):
        quotas.limit(user, "NOT_A_LIMIT")


def test_staff_set_overrides_in_the_admin_and_nobody_else_sees_them(client, user, make_user, make_datanet):
    staff = make_user("staffer", is_staff=True, is_superuser=True)
    client.force_login(staff)
    page = client.get("/admin/accounts/quotaoverride/add/")
    assert page.status_code == 200 and "Seconds of training per 24 hours" in page.content.decode()
    saved = client.post(
        "/admin/accounts/quotaoverride/add/",
        {"user": user.pk, "name": "TRAINING_GPU_SECONDS_PER_DAY", "value": 86400, "note": "course week"},
    )
    assert saved.status_code == 302, saved.content.decode()[:2000]
    override = QuotaOverride.objects.get(user=user)
    assert override.set_by == staff and quotas.limit(user, "TRAINING_GPU_SECONDS_PER_DAY") == 86400
    owner = make_user("owner")  # a Datanet owner may use the admin for their Datanets, not for limits
    make_datanet(owner=owner)
    client.force_login(owner)
    assert client.get("/admin/").status_code == 200
    assert "Quota" not in client.get("/admin/").content.decode()
    assert client.get("/admin/accounts/quotaoverride/").status_code == 403
    assert client.get(f"/admin/accounts/quotaoverride/{override.pk}/change/").status_code == 403


def test_when_a_rolling_day_limit_frees():
    now = timezone.now()
    hour = timedelta(hours=1)
    # 2 h used (23-22 h ago and 2-1 h ago): under 1.5 h once half of the older hour left the window,
    # which starts reaching it in an hour
    spans = [(now - 23 * hour, now - 22 * hour), (now - 2 * hour, now - hour)]
    assert quotas.frees_after(spans, now, 1.5 * 3600) == pytest.approx(5400, abs=2)
    assert quotas.frees_after(spans, now, 3 * 3600) == 60  # under already: try in a minute
    stamps, amounts = [now - 23 * hour, now - hour], [700, 500]
    assert quotas.first_leaves(stamps, now, amounts, 1000) == pytest.approx(3600, abs=2)  # the 700 leaves
    assert quotas.later(90) == "in about 2 minutes" and quotas.later(4 * 3600) == "in about 4 hours"
