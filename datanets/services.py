"""Datanet workflows, called alike by pages, the API, admin actions and tasks.

Every refusal raises DatanetError with a message for people and an HTTP status.
Multi-row changes run in one transaction: an upload stores every row or none.
"""

from __future__ import annotations

import secrets
import uuid
from contextlib import nullcontext
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.text import slugify

from core.jobs import JobStatus
from core.memo import remembered, verify_seconds
from core.memory import memory_cap
from core.queue import enqueue
from datanets import quotas as upload_quotas
from datanets.access import Action, can, visible_to
from datanets.errors import DatanetError
from datanets.ledger import append_to_log, consistency, inclusion, leaf_data, leaf_hashes, verify
from datanets.models import (
    ROLE_RANK,
    AccessRequest,
    Contribution,
    ContributorStanding,
    Datanet,
    DatanetVersion,
    Membership,
    ReviewPolicy,
    Role,
    UploadBatch,
    Validation,
)
from datanets.parsing import Limits, UploadError, detect_format, parse_upload

__all__ = [  # one door for callers
    "DatanetError", "checked", "consistency", "inclusion", "leaf_data", "leaf_hashes", "verify",
]  # fmt: skip


def checked(datanet: Datanet) -> list:
    """verify(datanet), reused for a minute per version: anyone may ask, and it reads every record."""
    version = datanet.current_version
    key = f"verify:datanet:{datanet.pk}:{version.number if version else 0}"
    return remembered(key, verify_seconds(), lambda: verify(datanet))


def require(user, action: Action, datanet: Datanet) -> None:
    if not can(user, action, datanet):
        raise DatanetError(f"You may not {action} in “{datanet.name}”.", 403)


# --- Datanets and members -----------------------------------------------------------------


def create_datanet(owner, *, name: str, slug: str = "", **fields) -> Datanet:
    if slug and not slugify(slug):
        raise DatanetError("An address is made of letters, digits, hyphens and underscores.")
    # A name with no Latin letters or digits (“日本語”) gets an address of its own.
    slug = slugify(slug or name)[:80] or f"datanet-{secrets.token_hex(3)}"
    if Datanet.objects.filter(slug=slug).exists():
        if visible_to(owner).filter(slug=slug).exists():
            raise DatanetError(f"The address “{slug}” is taken; choose another name or slug.", 409)
        # A private Datanet this person may not see holds it: saying "taken" would tell them it exists.
        slug = f"{slug[:75]}-{secrets.token_hex(2)}"
    try:
        with transaction.atomic():
            return Datanet.objects.create(owner=owner, name=name, slug=slug, **fields)
    except IntegrityError:
        raise DatanetError(f"The address “{slug}” is taken; choose another name or slug.", 409) from None


def set_member(by, datanet: Datanet, user, role: str) -> Membership:
    require(by, Action.MANAGE, datanet)
    if role not in Role.values:
        raise DatanetError(f"Unknown role {role!r}.")
    if user.pk == datanet.owner_id:
        raise DatanetError("The owner's role cannot be changed.", 409)
    membership, _ = Membership.objects.update_or_create(
        datanet=datanet, user=user, defaults={"role": role, "added_by": by}
    )
    return membership


def remove_member(by, datanet: Datanet, user) -> None:
    require(by, Action.MANAGE, datanet)
    if user.pk == datanet.owner_id:
        raise DatanetError("The owner cannot be removed.", 409)
    Membership.objects.filter(datanet=datanet, user=user).delete()


def request_access(user, datanet: Datanet, role: str = Role.CONTRIBUTOR, message: str = "") -> AccessRequest:
    require(user, Action.REQUEST, datanet)
    if role not in (Role.VIEWER, Role.CONTRIBUTOR, Role.VALIDATOR):
        raise DatanetError("You can ask to be a viewer, contributor or validator.")
    if len(message) > 2000:
        raise DatanetError("Keep the message under 2,000 characters.")
    try:
        with transaction.atomic():
            return AccessRequest.objects.create(datanet=datanet, user=user, role=role, message=message.strip())
    except IntegrityError:
        raise DatanetError("You already have a pending request for this Datanet.", 409) from None


def decide_request(by, access_request: AccessRequest, approve: bool) -> AccessRequest:
    require(by, Action.MANAGE, access_request.datanet)
    status = AccessRequest.Status.APPROVED if approve else AccessRequest.Status.DENIED
    with transaction.atomic():
        changed = AccessRequest.objects.filter(pk=access_request.pk, status=AccessRequest.Status.PENDING).update(
            status=status, decided_by=by, decided_at=timezone.now()
        )
        if changed != 1:
            raise DatanetError("This request was already decided.", 409)
        if approve:
            current = Membership.objects.filter(datanet=access_request.datanet, user=access_request.user).first()
            if current is None or ROLE_RANK[current.role] < ROLE_RANK[access_request.role]:
                Membership.objects.update_or_create(
                    datanet=access_request.datanet,
                    user=access_request.user,
                    defaults={"role": access_request.role, "added_by": by},
                )
    access_request.refresh_from_db()
    return access_request


# --- Uploads ----------------------------------------------------------------------------


def upload_limits() -> Limits:
    return Limits(
        max_bytes=settings.MAX_UPLOAD_BYTES,
        max_rows=settings.DATANET_MAX_ROWS,
        max_row_chars=settings.DATANET_MAX_ROW_CHARS,
    )


def standing(datanet: Datanet, user) -> ContributorStanding:
    return ContributorStanding.objects.filter(datanet=datanet, user=user).first() or ContributorStanding(
        datanet=datanet, user=user
    )


def votes_needed(datanet: Datanet, user) -> int:
    """Accepting votes (never the uploader's) each new record of `user` needs; 0: accepted at once.

    The owner's review policy decides: trusted uploaders (owner, validators) skip review
    under the default policy; otherwise the Datanet's vote count, 2 at least for a
    contributor of low standing; refused below the floor."""
    score = standing(datanet, user).reputation
    if score < settings.DATANET_REPUTATION_REFUSE:
        raise DatanetError(
            f"Your reputation in this Datanet ({score:.2f}) is below {settings.DATANET_REPUTATION_REFUSE}; "
            "new uploads are refused. Ask the owner to review your earlier contributions.",
            403,
        )
    if datanet.review_policy == ReviewPolicy.TRUSTED and can(user, Action.VALIDATE, datanet):
        return 0
    return max(datanet.review_votes, 2 if score < settings.DATANET_REPUTATION_HOLD else 1)


def start_upload(user, datanet: Datanet, filename: str, data: bytes, options: dict) -> UploadBatch:
    """Check rights, record the batch, then parse now (small files) or in a Celery task."""
    require(user, Action.CONTRIBUTE, datanet)
    votes_needed(datanet, user)  # refuse early, before storing anything
    if len(data) > settings.MAX_UPLOAD_BYTES:
        raise DatanetError(f"The file is {len(data):,} bytes; the limit is {settings.MAX_UPLOAD_BYTES:,}.", 413)
    upload_quotas.check_bytes(user, len(data))
    upload_quotas.check_rows(user, 1)  # none left today: refused before the file is kept
    batch = UploadBatch.objects.create(
        datanet=datanet,
        uploader=user,
        filename=Path(filename or "upload").name[:255],
        file_format=(options.get("file_format") or "auto")[:16],
        size_bytes=len(data),
        options=options,
    )
    if len(data) <= settings.DATANET_ASYNC_UPLOAD_BYTES and not _compressed(filename, options):
        batch.claim()
        return ingest(batch, data, refuse=True)
    folder = Path(settings.MEDIA_ROOT) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}.upload"
    path.write_bytes(data)
    UploadBatch.objects.filter(pk=batch.pk).update(stored_file=str(path))
    enqueue(batch, "datanets.ingest_upload")
    batch.refresh_from_db()
    return batch


def _compressed(filename: str, options: dict) -> bool:
    """A binary, compressed format (Parquet): however small the file, it is unpacked in a worker."""
    try:
        return detect_format(filename, options.get("file_format")) == "parquet"
    except UploadError:
        return False


def ingest(batch: UploadBatch, data: bytes, memory_mb: int | None = None, refuse: bool = False) -> UploadBatch:
    """Parse a claimed batch and store all its new rows, or none and the errors. In a worker, parsing
    may add at most `memory_mb` to the process (core.memory): past it the upload fails, nothing else.
    Over the day's records the batch fails too, and with `refuse` (in a request) the DatanetError
    (429, Retry-After) is raised again for the caller to answer with."""
    datanet, options = batch.datanet, batch.options

    def progress(done: int) -> None:
        UploadBatch.objects.filter(pk=batch.pk).update(rows_done=done)

    try:
        with memory_cap(memory_mb) if memory_mb else nullcontext():
            result = parse_upload(
                data, batch.filename, datanet.schema, file_format=options.get("file_format"),
                txt_paragraphs=options.get("txt_mode") == "paragraph", mapping=options.get("mapping") or {},
                columns=options.get("columns") or {}, limits=upload_limits(), progress=progress,
            )  # fmt: skip
    except UploadError as exc:
        batch.finish(JobStatus.FAILED, str(exc))
        return batch
    except MemoryError:
        if not memory_mb:
            raise
        batch.finish(JobStatus.FAILED, f"Reading this file needed more than {memory_mb:,} MB of memory, the most one "
                     "upload may use on this server; nothing was stored. Split it into smaller files.")  # fmt: skip
        return batch
    rows = len(result.records) + result.error_count
    if result.error_count:
        UploadBatch.objects.filter(pk=batch.pk).update(
            rows_total=rows, rows_done=rows, errors=[e.as_dict() for e in result.errors], error_count=result.error_count
        )
        noun = "row has" if result.error_count == 1 else "rows have"
        batch.finish(
            JobStatus.FAILED, f"{result.error_count} {noun} errors; nothing was stored. Fix them and upload again."
        )
        return batch
    try:
        added, duplicates, version = _store_rows(batch, result.records)
    except IntegrityError:
        batch.finish(JobStatus.FAILED, "Another upload added some of these records at the same moment; upload again.")
        return batch
    except DatanetError as exc:  # the records limit: the message says when it frees
        UploadBatch.objects.filter(pk=batch.pk).update(rows_total=rows, rows_done=rows)
        batch.finish(JobStatus.FAILED, str(exc))
        if refuse:
            raise
        return batch
    skipped = [
        {"row": r, "field": "", "message": "Duplicate of an existing record; skipped."} for r in duplicates[:200]
    ]
    UploadBatch.objects.filter(pk=batch.pk).update(
        rows_total=rows, rows_done=rows, rows_added=added, rows_duplicate=len(duplicates), errors=skipped
    )
    batch.finish(JobStatus.SUCCEEDED, _stored_message(added, len(duplicates), version))
    return batch


def _stored_message(added: int, duplicates: int, version: DatanetVersion | None) -> str:
    skipped = f"{duplicates} duplicate{'' if duplicates == 1 else 's'} skipped"
    if version is not None:
        return f"{added} records accepted and added to version {version.number}, ready to train on; {skipped}."
    return f"{added} records added for review; {skipped}."


def _store_rows(batch: UploadBatch, records: list[tuple[int, dict, str]]):
    """(added, duplicate rows, the new version when the rows were accepted at once)."""
    datanet, user = batch.datanet, batch.uploader
    with transaction.atomic():
        needs = votes_needed(datanet, user)
        status = Contribution.Status.ACCEPTED if needs == 0 else Contribution.Status.PENDING
        decided = timezone.now() if needs == 0 else None
        hashes = [h for _, _, h in records]
        existing: set[str] = set()
        for i in range(0, len(hashes), 2000):
            chunk = hashes[i : i + 2000]
            existing.update(
                Contribution.objects.filter(datanet=datanet, content_hash__in=chunk).values_list(
                    "content_hash", flat=True
                )
            )
        fresh, duplicates = [], []
        for row, content, digest in records:
            if digest in existing:
                duplicates.append(row)
                continue
            existing.add(digest)
            fresh.append(
                Contribution(
                    datanet=datanet, contributor=user, content=content, content_hash=digest, batch=batch,
                    source_file=batch.filename, source_row=row, needs_votes=needs, status=status, decided_at=decided,
                )
            )  # fmt: skip
        upload_quotas.check_rows(user, len(fresh))  # over the day's records: nothing is stored
        Contribution.objects.bulk_create(fresh, batch_size=2000)
        version = None
        if needs == 0 and fresh:
            _count_accepted(datanet, user, len(fresh))
            version = append_to_log(datanet, fresh, user)
    return len(fresh), duplicates, version


def _count_accepted(datanet: Datanet, user, n: int) -> None:
    ContributorStanding.objects.get_or_create(datanet=datanet, user=user)
    ContributorStanding.objects.filter(datanet=datanet, user=user).update(accepted=F("accepted") + n)


# --- Validation, reputation and the log ---------------------------------------------------


def vote(validator, contribution: Contribution, decision: str, reason: str = "", malicious: bool = False):
    """One validator's vote; enough accepts accept, one reject rejects. Returns the contribution."""
    return decide_many(validator, contribution.datanet, [contribution.pk], decision, reason, malicious)[0]


def decide_many(validator, datanet: Datanet, ids: list[int], decision: str, reason: str = "", malicious=False):
    require(validator, Action.VALIDATE, datanet)
    if decision not in Validation.Vote.values:
        raise DatanetError("A vote is accept or reject.")
    if decision == Validation.Vote.REJECT and not reason.strip():
        raise DatanetError("Give a reason when rejecting, so the contributor can learn from it.")
    with transaction.atomic():
        rows = list(Contribution.objects.select_for_update().filter(datanet=datanet, pk__in=ids).order_by("pk"))
        if len(rows) != len(set(ids)):
            raise DatanetError("Some of these contributions do not exist in this Datanet.", 404)
        accepted = []
        for row in rows:
            if row.status != Contribution.Status.PENDING:
                raise DatanetError(f"Contribution #{row.pk} was already {row.status}.", 409)
            if row.contributor_id == validator.pk:
                raise DatanetError(
                    f"Record #{row.pk} is your own: your vote on it would not count, another validator decides it.",
                    403,
                )
            _, created = Validation.objects.get_or_create(
                contribution=row, validator=validator,
                defaults={"vote": decision, "reason": reason[:500], "malicious": malicious and decision == "reject"},
            )  # fmt: skip
            if not created:
                raise DatanetError(f"You already voted on contribution #{row.pk}.", 409)
            if decision == Validation.Vote.REJECT:
                _settle(row, Contribution.Status.REJECTED, malicious)
            elif row.validations.filter(vote=Validation.Vote.ACCEPT).count() >= row.needs_votes:
                _settle(row, Contribution.Status.ACCEPTED, False)
                accepted.append(row)
        if accepted:
            append_to_log(datanet, accepted, validator)
    return rows


def _settle(row: Contribution, status: str, malicious: bool) -> None:
    row.status, row.decided_at = status, timezone.now()
    row.save(update_fields=["status", "decided_at"])
    ContributorStanding.objects.get_or_create(datanet_id=row.datanet_id, user_id=row.contributor_id)
    counts = (
        {"accepted": F("accepted") + 1} if status == Contribution.Status.ACCEPTED else {"rejected": F("rejected") + 1}
    )
    if malicious:
        counts["malicious"] = F("malicious") + 1
    ContributorStanding.objects.filter(datanet_id=row.datanet_id, user_id=row.contributor_id).update(**counts)
