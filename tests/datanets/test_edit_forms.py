"""Every editable Datanet form, read back from the page and saved unchanged, changes nothing;
tags are comma-separated words, licences a choice or "Other"."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.forms.models import model_to_dict
from django.test import Client

from datanets.models import Datanet, Membership

pytestmark = pytest.mark.django_db


class FormValues(HTMLParser):
    """What a browser would submit for each <form> of a page, unchanged (first button not included)."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []
        self._select = self._textarea = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({})
        elif not self.forms or "disabled" in a:
            return
        elif tag == "input" and a.get("name") and a.get("type") not in ("submit", "file"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            checkable = a.get("type") in ("checkbox", "radio")
            self.forms[-1][a["name"]] = a.get("value", "on" if checkable else "")
        elif tag == "select":
            self._select = a.get("name")
        elif tag == "option" and self._select and ("selected" in a or self._select not in self.forms[-1]):
            self.forms[-1][self._select] = a.get("value", "")
        elif tag == "textarea":
            self._textarea = a.get("name")
            self.forms[-1][self._textarea] = ""

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data):
        if self._textarea:
            self.forms[-1][self._textarea] += data.lstrip("\n") if not self.forms[-1][self._textarea] else data


def forms_on(client: Client, url: str, key: str = "name") -> list[dict]:
    """The page's own POST forms that carry `key` (not the sign-out form of the top bar)."""
    response = client.get(url)
    assert response.status_code == 200
    parser = FormValues()
    parser.feed(response.content.decode())
    return [f for f in parser.forms if "csrfmiddlewaretoken" in f and key in f]


def snapshot(datanet: Datanet) -> dict:
    datanet.refresh_from_db()
    return model_to_dict(datanet)


@pytest.mark.parametrize(
    "licence, tags",
    [("CC-BY-4.0", ["fiction", "test"]), ("Custom licence 2.1", ["legal"]), ("CC0-1.0", [])],
)
def test_the_edit_form_saved_unchanged_changes_nothing(make_datanet, licence, tags):
    datanet = make_datanet(domain_tags=tags, description="Line one.\nLine two.")
    Datanet.objects.filter(pk=datanet.pk).update(licence=licence)
    client = Client()
    client.force_login(datanet.owner)
    before = snapshot(datanet)
    (form,) = forms_on(client, f"/datanets/{datanet.slug}/edit/")
    assert form["domain_tags"] == ", ".join(tags)  # words, not ['fiction', 'test']
    for _ in range(2):  # and again: nothing drifts on a second save
        response = client.post(f"/datanets/{datanet.slug}/edit/", form)
        assert response.status_code == 302, response.content.decode()[-2000:]
        assert snapshot(datanet) == before
        (form,) = forms_on(client, f"/datanets/{datanet.slug}/edit/")


def test_a_created_datanet_reads_back_as_it_was_typed(user):
    client = Client()
    client.force_login(user)
    (blank,) = forms_on(client, "/datanets/new/")
    typed = {**blank, "name": "Tenancy law", "domain_tags": "Legal, housing , legal", "licence": "other",
             "licence_other": "My own terms", "visibility": "private", "review_policy": "votes",
             "review_votes": "2"}  # fmt: skip
    assert client.post("/datanets/new/", typed).status_code == 302
    datanet = Datanet.objects.get(slug="tenancy-law")
    assert (datanet.domain_tags, datanet.licence, datanet.review_votes) == (["legal", "housing"], "My own terms", 2)
    before = snapshot(datanet)
    (form,) = forms_on(client, f"/datanets/{datanet.slug}/edit/")
    assert (form["licence"], form["licence_other"]) == ("other", "My own terms")
    assert client.post(f"/datanets/{datanet.slug}/edit/", form).status_code == 302
    assert snapshot(datanet) == before


def test_other_licence_needs_a_name(make_datanet):
    datanet = make_datanet()
    client = Client()
    client.force_login(datanet.owner)
    (form,) = forms_on(client, f"/datanets/{datanet.slug}/edit/")
    response = client.post(f"/datanets/{datanet.slug}/edit/", {**form, "licence": "other", "licence_other": " "})
    assert response.status_code == 400 and "Type the name of the licence" in response.content.decode()
    assert snapshot(datanet)["licence"] == "CC-BY-4.0"


def test_the_slug_help_reads_as_an_address(user):
    client = Client()
    client.force_login(user)
    page = client.get("/datanets/new/").content.decode()
    assert "/datanets/contract-clauses/" in page and "/datanets//" not in page


def test_the_member_forms_saved_unchanged_change_nothing(make_datanet, roles):
    datanet = make_datanet(visibility="permissioned")
    roles(datanet)
    client = Client()
    client.force_login(datanet.owner)
    before = sorted(Membership.objects.values_list("user__username", "role"))
    forms = forms_on(client, f"/datanets/{datanet.slug}/members/", key="username")
    role_forms = [f for f in forms if f.get("username") and f.get("role")]  # one per member, carrying its role
    assert len(role_forms) == 3
    for form in role_forms:
        client.post(f"/datanets/{datanet.slug}/members/", {**form, "action": "set"})
    assert sorted(Membership.objects.values_list("user__username", "role")) == before
