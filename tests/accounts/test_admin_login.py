"""The admin has no password form of its own: /admin/login/ sends people to the site's login page,
whose rate limit (shared by every process through the Redis cache) therefore covers the admin too.
Its "view on site" shortcut, which redirects to any object by id, is for staff only."""

from __future__ import annotations

import pytest
from django.contrib.contenttypes.models import ContentType

from datanets.models import Datanet
from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db


def test_posting_a_password_to_the_admin_login_signs_nobody_in(client, make_user):
    make_user("me", is_staff=True)
    response = client.post("/admin/login/?next=/admin/", {"username": "me", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/accounts/login/?next=%2Fadmin%2F"
    assert "_auth_user_id" not in client.session
    away = client.get("/admin/login/?next=https://evil.example/")
    assert away["Location"] == "/accounts/login/?next=%2Fadmin%2F"  # only paths on this site


def test_thirty_wrong_passwords_then_the_right_one_is_refused(client, make_user, settings):
    settings.ACCOUNT_RATE_LIMITS = {"login_failed": "10/m/ip,5/5m/key"}  # the deployed limits
    make_user("me", is_staff=True)
    for _ in range(30):
        client.post("/admin/login/", {"username": "me", "password": "wrong"})  # only a redirect now
        client.post("/accounts/login/", {"login": "me", "password": "wrong"})
    response = client.post("/accounts/login/?next=/admin/", {"login": "me", "password": PASSWORD})
    assert "_auth_user_id" not in client.session
    assert response.status_code == 429 or "Too many failed login attempts" in response.content.decode()


def test_the_view_on_site_shortcut_is_for_staff_only(client, make_user, make_datanet):
    owner = make_user("owner1")
    make_datanet(owner=owner, slug="mine")
    secret = make_datanet(owner=make_user("other"), slug="secret-plans", visibility="private")
    kind = ContentType.objects.get_for_model(Datanet)
    client.force_login(owner)  # an owner may use the admin for their own Datanets
    assert client.get("/admin/").status_code == 200
    assert client.get(f"/admin/r/{kind.pk}/{secret.pk}/").status_code == 404
    client.force_login(make_user("boss", is_staff=True))
    assert client.get(f"/admin/r/{kind.pk}/{secret.pk}/")["Location"].endswith("/datanets/secret-plans/")


def test_the_member_picker_names_only_people_the_owner_knows(client, make_user, make_datanet):
    from datanets.models import Membership, Role

    owner = make_user("owner1")
    datanet = make_datanet(owner=owner, slug="mine")
    member, stranger = make_user("member-ann"), make_user("secret-stranger")
    row = Membership.objects.create(datanet=datanet, user=member, role=Role.VIEWER)
    client.force_login(owner)
    page = client.get(f"/admin/datanets/membership/{row.pk}/change/").content.decode()
    assert "member-ann" in page
    # Typing a stranger's id into the add form: the page that comes back (here for a missing role) names
    # nobody, so counting ids does not list the site's users.
    page = client.post("/admin/datanets/membership/add/", {"datanet": datanet.pk, "user": stranger.pk, "role": ""})
    assert page.status_code == 200 and "secret-stranger" not in page.content.decode()
    page = client.post("/admin/datanets/membership/add/", {"datanet": datanet.pk, "user": member.pk, "role": ""})
    assert "member-ann" in page.content.decode()
