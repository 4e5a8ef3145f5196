"""In Chromium, desktop and phone: a domain expert previews a file, changes where a column
goes, stores it, and finds the records accepted and ready to train on."""

from __future__ import annotations

import json

import pytest

from datanets.models import Contribution
from tests.helpers import ARTIFACTS, sign_in

pytestmark = pytest.mark.browser

DESKTOP, PHONE = {"width": 1280, "height": 900}, {"width": 390, "height": 844}


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def records_file(tmp_path):
    rows = [{"instruction": f"What does clause {i} mean?", "output": f"It means {i}."} for i in range(1, 13)]
    rows.append({"instruction": "What does clause 13 mean?", "input": "Section 4.2 of the 2019 lease",
                 "output": "It means 13.", "source": "lease-2019.pdf", "reviewer_note": "check"})  # fmt: skip
    path = tmp_path / "clauses.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


@pytest.mark.parametrize("viewport, suffix", [(DESKTOP, ""), (PHONE, "-phone")])
def test_preview_then_confirm(page, live_url, make_datanet, make_user, tmp_path, viewport, suffix):
    datanet = make_datanet(visibility="private", owner=make_user("olivia"), slug="clauses")
    page.set_viewport_size(viewport)
    sign_in(page, live_url, "olivia")
    page.goto(f"{live_url}/datanets/{datanet.slug}/contribute/")
    assert "accepted as soon as you confirm" in page.get_by_test_id("review-next").inner_text()
    page.set_input_files("input[name=file]", str(records_file(tmp_path)))
    page.get_by_role("button", name="Preview").click()

    preview = page.get_by_test_id("upload-preview")
    assert "13 new records" in preview.get_by_test_id("count-new").inner_text()
    assert "0 rows with problems" in preview.get_by_test_id("count-bad").inner_text()
    assert "What does clause 1 mean?" in preview.get_by_test_id("preview-sample").inner_text()
    page.select_option("select[aria-label='Where the column reviewer_note goes']", "ignore")
    page.get_by_role("button", name="Check again with these columns").click()
    assert page.locator("select[aria-label='Where the column reviewer_note goes']").input_value() == "ignore"
    assert page.locator("select[aria-label='Where the column source goes']").input_value() == "extra"
    assert no_horizontal_scroll(page)
    page.screenshot(path=str(ARTIFACTS / f"upload-preview{suffix}.png"), full_page=True)
    assert not Contribution.objects.exists()  # nothing stored before the confirm

    page.get_by_test_id("confirm-upload").click()
    assert "13 records accepted" in page.get_by_test_id("upload-message").inner_text()
    assert "ready to train on" in page.get_by_test_id("upload-next").inner_text()
    assert no_horizontal_scroll(page)
    page.screenshot(path=str(ARTIFACTS / f"upload-result{suffix}.png"), full_page=True)
    row13 = Contribution.objects.get(source_row=13)
    assert row13.status == "accepted" and row13.content["input"] == "Section 4.2 of the 2019 lease"
    assert row13.content["extra"] == {"source": "lease-2019.pdf"}

    page.goto(f"{live_url}/datanets/{datanet.slug}/")
    assert page.get_by_test_id("train-on-this").is_visible() and page.get_by_test_id("manage-in-admin").is_visible()
    assert no_horizontal_scroll(page)
    page.screenshot(path=str(ARTIFACTS / f"datanet-detail{suffix}.png"), full_page=True)
    page.goto(f"{live_url}/datanets/{datanet.slug}/records/{row13.pk}/")
    assert "Section 4.2 of the 2019 lease" in page.get_by_test_id("record").inner_text()
    assert no_horizontal_scroll(page)
    page.screenshot(path=str(ARTIFACTS / f"record-page{suffix}.png"), full_page=True)
    for name in ("versions", "edit"):
        page.goto(f"{live_url}/datanets/{datanet.slug}/{name}/")
        assert no_horizontal_scroll(page), name
        page.screenshot(path=str(ARTIFACTS / f"datanet-{name}{suffix}.png"), full_page=True)
