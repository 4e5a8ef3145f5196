"""The home, the API guide and flash messages in a real Chromium, at a desktop and a phone size."""

from __future__ import annotations

import uuid

import pytest

from tests import factories
from tests.helpers import ARTIFACTS, sign_in
from training.models import BaseModel, TrainingJob

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
NO_SIDEWAYS_SCROLL = "document.documentElement.scrollWidth <= window.innerWidth"


def _job(owner, name, status="queued", **extra) -> TrainingJob:
    base = BaseModel.objects.get_or_create(source="tiny/base", defaults={"name": "Tiny", "methods": ["lora"]})[0]
    return TrainingJob.objects.create(owner=owner, name=name, base_model=base, config={}, status=status,
                                      request_key=uuid.uuid4().hex, **extra)  # fmt: skip


def test_a_new_account_sees_what_to_do_first(page, live_url, user):
    sign_in(page, live_url, "alice")
    checklist = page.get_by_test_id("get-started")
    assert checklist.is_visible()
    for n in (1, 2, 3):
        assert checklist.get_by_test_id(f"step-{n}").get_attribute("data-done") == "false"
    checklist.get_by_role("link", name="Find or create a Datanet").click()
    page.wait_for_url(live_url + "/datanets/")
    page.go_back()
    page.screenshot(path=str(ARTIFACTS / "home-new-account.png"), full_page=True)


def test_the_home_fits_a_phone_signed_in_and_anonymous(page, live_url, user, other_user):
    net = factories.datanet(user, slug="employment-law-questions-and-answers-from-clinics", visibility="permissioned")
    factories.datanet(other_user, slug="someone-elses-private-data", visibility="private")
    _job(user, "A first try at employment law with the small preset", status="running", progress=0.6)
    done = _job(user, "Employment law assistant, second attempt", status="succeeded", adapter_dir="/tmp/adapter")
    _job(other_user, "Somebody else's job")
    page.set_viewport_size(PHONE)

    page.goto(live_url + "/")
    assert page.get_by_role("link", name="Create an account").is_visible()
    assert page.evaluate(NO_SIDEWAYS_SCROLL)
    page.screenshot(path=str(ARTIFACTS / "home-phone-anonymous.png"), full_page=True)

    sign_in(page, live_url, "alice")
    assert page.get_by_test_id("my-datanets").get_by_role("link", name=net.name).is_visible()
    assert page.get_by_test_id("my-models").get_by_role("link", name="Chat").get_attribute("href") == (
        f"/chat/{done.model_id}/"
    )
    assert page.get_by_text("Somebody else's job").count() == 0
    assert page.get_by_text("Someone Elses Private Data").count() == 0
    assert page.evaluate(NO_SIDEWAYS_SCROLL)
    page.screenshot(path=str(ARTIFACTS / "home-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.screenshot(path=str(ARTIFACTS / "home-signed-in-desktop.png"), full_page=True)


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 900}, PHONE])
def test_the_api_guide_and_the_way_back_from_swagger(page, live_url, viewport):
    page.set_viewport_size(viewport)
    page.goto(live_url + "/")
    if viewport == PHONE:
        page.locator("label.nav-burger").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="API").click()
    page.wait_for_url(live_url + "/api/")
    assert page.get_by_test_id("curl-example").inner_text().startswith(f"curl {live_url}/v1/chat/completions")
    assert page.evaluate(NO_SIDEWAYS_SCROLL)
    suffix = "-phone" if viewport == PHONE else ""
    page.screenshot(path=str(ARTIFACTS / f"api-page{suffix}.png"), full_page=True)

    page.get_by_role("link", name="Open the REST API reference").click()
    page.wait_for_url(live_url + "/api/docs/")
    page.wait_for_selector("#swagger-ui .info")  # Swagger UI drew the schema
    page.screenshot(path=str(ARTIFACTS / f"api-docs{suffix}.png"))
    page.get_by_test_id("back-to-site").click()
    page.wait_for_url(live_url + "/")


def _overlap(a: dict, b: dict) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and (a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])
    )


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 900}, PHONE])
def test_a_flash_message_never_covers_the_job_status(page, live_url, user, viewport):
    job = _job(user, "Cancel me")
    page.set_viewport_size(viewport)
    sign_in(page, live_url, "alice")
    page.goto(live_url + job.get_absolute_url())
    page.once("dialog", lambda dialog: dialog.accept())  # "Cancel this training job?"
    page.get_by_role("button", name="Cancel").first.click()
    flash = page.locator("#messages .flash").first
    flash.wait_for()
    assert "Cancel requested" in flash.inner_text()
    status = page.get_by_test_id("job-status")
    assert not _overlap(flash.bounding_box(), status.bounding_box())
    assert not _overlap(flash.bounding_box(), page.locator("h1").bounding_box())
    assert page.evaluate(NO_SIDEWAYS_SCROLL)
    page.screenshot(path=str(ARTIFACTS / f"job-flash{'-phone' if viewport == PHONE else ''}.png"))
    flash.get_by_role("button", name="Dismiss this message").click()
    assert page.locator("#messages .flash").count() == 0
