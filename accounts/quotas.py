"""Per-person limits (fair share): the deployment's default, a setting of the same name, unless staff set
another for that person (QuotaOverride, in the admin). Staff themselves have none. A refusal names the
limit and says when it frees; the apps that count usage (training, uploads, chat) build it."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model

from accounts.models import QUOTA_CHOICES, QuotaOverride

DAY = timedelta(days=1)
NAMES = dict(QUOTA_CHOICES)


@dataclass(frozen=True)
class Refusal:
    message: str
    field: str | None
    status: int
    retry_after: int | None = None


def limit(user, name: str) -> int | None:
    """`user`'s limit `name`; None: no limit (staff)."""
    if name not in NAMES:
        raise KeyError(name)
    if getattr(user, "is_staff", False):
        return None
    if getattr(user, "pk", None) is not None:
        override = QuotaOverride.objects.filter(user_id=user.pk, name=name).values_list("value", flat=True).first()
        if override is not None:
            return override
    return getattr(settings, name)


def limit_for_id(user_id, name: str) -> int | None:
    """The same, for a person known by id (the chat path carries ids, not users)."""
    user = get_user_model().objects.filter(pk=user_id).only("pk", "is_staff").first()
    return getattr(settings, name) if user is None else limit(user, name)


def frees_after(spans: Iterable[tuple[datetime, datetime]], now: datetime, most: float) -> int:
    """Seconds until the time (or amount) counted in spans over the last day drops under `most`, if
    nothing new is added: spans leave the rolling window as it slides. At least a minute."""
    spans = list(spans)

    def used(shift: float) -> float:
        start = now - DAY + timedelta(seconds=shift)
        return sum(max(0.0, (end - max(begin, start)).total_seconds()) for begin, end in spans)

    low, high = 0.0, DAY.total_seconds()
    if used(0) < most:
        return 60
    for _ in range(40):  # bisection to well under a second
        mid = (low + high) / 2
        low, high = (mid, high) if used(mid) >= most else (low, mid)
    return max(60, math.ceil(high))


def first_leaves(times: Iterable[datetime], now: datetime, amounts: Iterable[float], most: float) -> int:
    """Seconds until the amounts stamped at `times` over the last day sum under `most` (oldest leave first)."""
    pairs = sorted(zip(times, amounts, strict=True))
    total = sum(a for _, a in pairs)
    for stamp, amount in pairs:
        if total < most:
            break
        total -= amount
        wait = (stamp + DAY - now).total_seconds()
        if total < most:
            return max(60, math.ceil(wait))
    return 60


def later(seconds: float) -> str:
    """'in about 3 hours' — when something frees, in words."""
    minutes = max(1, round(seconds / 60))
    if minutes < 90:
        return f"in about {minutes} minute{'s' if minutes != 1 else ''}"
    hours = round(minutes / 60)
    return f"in about {hours} hour{'s' if hours != 1 else ''}"
