"""Template tags for the site's navigation."""

from __future__ import annotations

from django import template
from django.contrib import admin

register = template.Library()


@register.simple_tag(takes_context=True)
def admin_allowed(context) -> bool:
    """Whether the admin would let this person in: staff, and Datanet owners (scoped admin).

    Asks the admin site itself, so the link and the door never disagree.
    """
    request = context.get("request")
    return request is not None and admin.site.has_permission(request)
