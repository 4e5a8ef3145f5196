"""In Chromium: a contributor fixes a file with two bad rows; the owner approves an
access request; the new member reads the records."""

from __future__ import annotations

import json

import pytest

from datanets import services
from datanets.models import Contribution, Membership
from tests.factories import alpaca
from tests.helpers import ARTIFACTS, sign_in

pytestmark = pytest.mark.browser


def test_contribute_fix_and_grant_access(page, live_url, make_datanet, make_user, tmp_path):
    datanet = make_datanet(visibility="permissioned", owner=make_user("olivia"))
    contributor, reader = make_user("carl"), make_user("rita")
    Membership.objects.create(datanet=datanet, user=contributor, role="contributor")
    rows = alpaca(5)
    rows[1] = {"instruction": "", "output": "no question"}
    rows[3] = {"instruction": "Where is the answer?"}
    bad = tmp_path / "records.jsonl"
    bad.write_text("\n".join(json.dumps(r) for r in rows))

    sign_in(page, live_url, "carl")
    page.goto(f"{live_url}/datanets/{datanet.slug}/contribute/")
    page.set_input_files("input[name=file]", str(bad))
    page.get_by_role("button", name="Preview").click()
    errors = page.get_by_test_id("preview-errors")
    text = errors.inner_text()
    assert "2\tinstruction" in text and "4\toutput" in text
    assert page.get_by_test_id("confirm-upload").count() == 0  # nothing can be stored from this file
    page.screenshot(path=str(ARTIFACTS / "upload-errors.png"), full_page=True)
    assert not Contribution.objects.exists()

    rows[1] = {"instruction": "Fixed question?", "output": "Fixed answer."}
    rows[3] = {"instruction": "Where is the answer?", "output": "Here."}
    bad.write_text("\n".join(json.dumps(r) for r in rows))
    page.get_by_role("link", name="Choose another file").click()
    page.set_input_files("input[name=file]", str(bad))
    page.get_by_role("button", name="Preview").click()
    page.get_by_test_id("confirm-upload").click()
    assert "5 records added for review" in page.get_by_test_id("upload-message").inner_text()
    assert "olivia" in page.get_by_test_id("upload-next").inner_text()  # who decides
    services.decide_many(datanet.owner, datanet, list(Contribution.objects.values_list("pk", flat=True)), "accept")

    sign_in(page, live_url, "rita")
    page.goto(f"{live_url}/datanets/{datanet.slug}/")
    assert "Fixed question?" not in page.content()
    page.select_option("select[name=role]", "viewer")
    page.fill("textarea[name=message]", "I review clinical notes.")
    page.get_by_role("button", name="Request access").click()
    assert page.get_by_test_id("request-pending").is_visible()

    sign_in(page, live_url, "olivia")
    page.goto(f"{live_url}/datanets/{datanet.slug}/members/")
    page.get_by_role("button", name="Approve").click()
    assert "approved" in page.content()

    sign_in(page, live_url, "rita")
    page.goto(f"{live_url}/datanets/{datanet.slug}/")
    assert page.get_by_test_id("records").get_by_text("Fixed question?").is_visible()
    page.screenshot(path=str(ARTIFACTS / "member-reads-records.png"), full_page=True)
    assert reader.datanet_memberships.get().role == "viewer"
