"""The moderation queue as a validator sees it, in Chromium: records as labelled fields (never
a Python dict), the decision buttons, and no sideways scroll on a phone."""

from __future__ import annotations

import pytest

from datanets import services
from tests import factories
from tests.helpers import ARTIFACTS, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize(
    "viewport, suffix", [({"width": 1280, "height": 900}, ""), ({"width": 390, "height": 844}, "-phone")]
)
def test_a_validator_reads_pending_records_as_labelled_fields(page, live_url, make_datanet, roles, viewport, suffix):
    datanet = make_datanet(visibility="private", slug="clinic")
    people = roles(datanet)
    rows = [
        {"instruction": "What is triage?", "input": "", "output": "Sorting patients by urgency."},
        {"instruction": "Summarise the note.", "input": "Stable, see in 2 weeks.", "output": "Stable."},
    ]
    batch = services.start_upload(people["contributor"], datanet, "notes.jsonl", factories.jsonl(rows), {})
    assert batch.rows.filter(status="pending").count() == 2  # a contributor's rows wait for review
    page.set_viewport_size(viewport)
    sign_in(page, live_url, "validator")
    page.goto(f"{live_url}/datanets/{datanet.slug}/")
    page.get_by_role("link", name="Moderate").click()
    text = page.locator("main").inner_text()
    assert "What is triage?" in text and "Sorting patients by urgency." in text and "Stable, see in 2 weeks." in text
    assert "{'" not in text and '{"' not in text  # no Python or JSON reprs where a person reads
    page.screenshot(path=str(ARTIFACTS / f"moderation{suffix}.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
