"""Fair share for uploads: bytes uploaded and records added per person over a rolling 24 hours (limits
from accounts.quotas). Bytes are counted when a file is received (before it is parsed); records when
they are stored, so a file that would go over the records limit stores nothing and says so."""

from __future__ import annotations

from django.db.models import Sum
from django.utils import timezone

from accounts import quotas
from datanets.errors import DatanetError
from datanets.models import UploadBatch


def _recent(user):
    return UploadBatch.objects.filter(uploader=user, created_at__gte=timezone.now() - quotas.DAY)


def check_bytes(user, size: int) -> None:
    """Refuse a file whose bytes would take this person over UPLOAD_BYTES_PER_DAY (429, Retry-After)."""
    most = quotas.limit(user, "UPLOAD_BYTES_PER_DAY")
    if most is None:
        return
    if size > most:
        raise DatanetError(f"The file is {size:,} bytes; one person may upload at most {most:,} bytes a day.", 413)
    stamps = list(_recent(user).values_list("created_at", "size_bytes"))
    used = sum(b for _, b in stamps)
    if used + size > most:
        wait = quotas.first_leaves([t for t, _ in stamps], timezone.now(), [b for _, b in stamps], most - size + 1)
        raise DatanetError(
            f"You have uploaded {used:,} bytes in the last 24 hours; with this file ({size:,} bytes) it would be "
            f"more than the {most:,} one person may upload a day. You can upload it {quotas.later(wait)}.",
            429, wait,
        )  # fmt: skip


def check_rows(user, new: int) -> None:
    """Refuse storing `new` records past UPLOAD_ROWS_PER_DAY (429, Retry-After): nothing is stored."""
    most = quotas.limit(user, "UPLOAD_ROWS_PER_DAY")
    if most is None:
        return
    left = max(0, most - (_recent(user).aggregate(n=Sum("rows_added"))["n"] or 0))
    if new <= left:
        return
    stamps = list(_recent(user).filter(rows_added__gt=0).values_list("created_at", "rows_added"))
    wait = quotas.first_leaves([t for t, _ in stamps], timezone.now(), [n for _, n in stamps], most - new + 1)
    raise DatanetError(
        f"This file adds {new:,} records; you may add {left:,} more today (one person may add {most:,} records "
        f"a day). Nothing was stored. Upload a smaller file, or this one {quotas.later(wait)}.",
        429, wait,
    )  # fmt: skip
