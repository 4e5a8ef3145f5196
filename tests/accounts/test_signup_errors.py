"""Sign-up in a real Chromium: each mistake is explained right under the field it is about."""

from __future__ import annotations

import pytest

from tests.helpers import ARTIFACTS

pytestmark = pytest.mark.browser


def _field_box(page, name: str) -> dict:
    return page.locator(f"[data-field={name}] input").bounding_box()


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 900}, {"width": 390, "height": 844}])
def test_a_taken_username_and_a_short_password_show_under_their_own_fields(page, live_url, user, viewport):
    page.set_viewport_size(viewport)
    page.goto(live_url + "/accounts/signup/")
    page.fill("input[name=email]", "newcomer@example.com")
    page.fill("input[name=username]", "alice")  # the `user` fixture took it
    page.fill("input[name=password1]", "abc")
    page.fill("input[name=password2]", "abc")
    page.locator("form button[type=submit]").first.click()

    username_error = page.locator("[data-field=username] .field-errors")
    password_error = page.locator("[data-field=password1] .field-errors")
    assert "already" in username_error.inner_text().lower()
    assert "too short" in password_error.inner_text().lower()
    assert page.locator("[data-field=email] .field-errors").count() == 0
    # Each message sits below its own input and above the next field's input.
    username_box, password_box = username_error.bounding_box(), password_error.bounding_box()
    assert _field_box(page, "username")["y"] < username_box["y"] < _field_box(page, "password1")["y"]
    assert _field_box(page, "password1")["y"] < password_box["y"] < _field_box(page, "password2")["y"]
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    name = "signup-errors" + ("-phone" if viewport["width"] < 500 else "")
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
