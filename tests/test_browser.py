"""The layout in a real headless Chromium: sign in, see the navigation, keep a screenshot."""

from __future__ import annotations

import pytest

from tests.helpers import ARTIFACTS, PASSWORD

pytestmark = pytest.mark.browser


def test_it_signs_in_and_shows_the_navigation(page, live_url, user):
    page.goto(live_url + "/")
    page.get_by_role("link", name="Sign in").first.click()
    page.fill("input[name=login]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.locator("form button[type=submit]").first.click()
    page.wait_for_url(live_url + "/")
    nav = page.get_by_role("navigation", name="Main")
    for item in ("Datanets", "Train", "Jobs", "Models", "Chat", "API"):
        assert nav.get_by_role("link", name=item, exact=True).is_visible()
    assert nav.get_by_role("link", name="Admin").count() == 0  # neither staff nor a Datanet owner
    assert page.get_by_test_id("account-menu").inner_text() == "alice"
    page.wait_for_function("document.body.dataset.live === 'on'")  # the notification websocket connected
    page.screenshot(path=str(ARTIFACTS / "home-signed-in.png"), full_page=True)


def test_a_wrong_password_shows_a_message_in_the_page(page, live_url, user):
    page.goto(live_url + "/accounts/login/")
    page.fill("input[name=login]", "alice")
    page.fill("input[name=password]", "not the password")
    page.locator("form button[type=submit]").first.click()
    assert page.get_by_text("not correct").is_visible()
    page.screenshot(path=str(ARTIFACTS / "login-error.png"))


def test_the_layout_works_on_a_phone(page, live_url, user):
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(live_url + "/")
    assert not page.get_by_role("link", name="Datanets").is_visible()
    page.locator("label.nav-burger").click()
    assert page.get_by_role("link", name="Datanets").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(ARTIFACTS / "nav-phone.png"))
