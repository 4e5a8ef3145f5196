"""Show a stored record as a person reads it: labelled fields, never a Python dict."""

from __future__ import annotations

import json

from django import template

register = template.Library()


@register.filter
def plain_value(value) -> str:
    """Text as it is; numbers, lists and objects from a file's extra columns as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)
