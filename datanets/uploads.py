"""Upload preview and the words on what happens next: check a file and show what would be
stored, before anything is; then store it through services.start_upload (all or nothing).

The page keeps the file under MEDIA_ROOT/upload-previews/<token>.upload beside a small
JSON note of who uploaded it to which Datanet; the confirm step finds it by token and
checks the note, so a token is useless to anyone else. The API's dry_run calls preview().
"""

from __future__ import annotations

import json
import re
import secrets
import time
from pathlib import Path

from django.conf import settings

from datanets import services
from datanets.access import Action
from datanets.errors import DatanetError
from datanets.models import Contribution, Datanet, Membership, ReviewPolicy, Role, UploadBatch
from datanets.parsing import CHOICE_LABELS, FIELD_LABELS, SCHEMA_FIELDS, UploadError, detect_format, parse_upload

SAMPLE_ROWS = 5
SHOWN_ERRORS = 20
KEEP_SECONDS = 24 * 3600
TOKEN = re.compile(r"^[0-9a-f]{32}$")
GONE = "This preview is no longer available (it expires after a day or was already stored); upload the file again."


def preview(user, datanet: Datanet, filename: str, data: bytes, options: dict) -> dict:
    """What storing this file would do: format, column → field, first records, bad and duplicate rows."""
    services.require(user, Action.CONTRIBUTE, datanet)
    needs = services.votes_needed(datanet, user)
    if len(data) > settings.MAX_UPLOAD_BYTES:
        raise DatanetError(f"The file is {len(data):,} bytes; the limit is {settings.MAX_UPLOAD_BYTES:,}.", 413)
    try:
        fmt = detect_format(filename, options.get("file_format"))
        result = parse_upload(
            data, filename, datanet.schema, file_format=options.get("file_format"),
            txt_paragraphs=options.get("txt_mode") == "paragraph", mapping=options.get("mapping") or {},
            columns=options.get("columns") or {}, limits=services.upload_limits(),
        )  # fmt: skip
    except UploadError as exc:
        raise DatanetError(str(exc), 422) from None
    duplicates = _duplicate_count(datanet, [h for _, _, h in result.records])
    new = len(result.records) - duplicates
    return {
        "filename": Path(filename).name, "format": fmt.upper(), "rows": len(result.records) + result.error_count,
        "new_records": new, "duplicate_rows": duplicates, "bad_rows": result.error_count,
        "rows_with_extra": result.rows_with_extra, "ready": result.error_count == 0 and new > 0,
        "columns": [{"name": c, "use": u, "label": _label(u)} for c, u in result.columns.items()],
        "fields": [{"value": f, "label": FIELD_LABELS[f]} for f in SCHEMA_FIELDS[datanet.schema]],
        "sample": [{"row": row, "content": content} for row, content, _ in result.records[:SAMPLE_ROWS]],
        "errors": [e.as_dict() for e in result.errors[:SHOWN_ERRORS]],
        "review": review(datanet, user, needs),
    }  # fmt: skip


def _label(use: str) -> str:
    return FIELD_LABELS.get(use) or CHOICE_LABELS[use]


def _duplicate_count(datanet: Datanet, hashes: list[str]) -> int:
    seen: set[str] = set()
    for i in range(0, len(hashes), 2000):
        chunk = hashes[i : i + 2000]
        found = Contribution.objects.filter(datanet=datanet, content_hash__in=chunk)
        seen.update(found.values_list("content_hash", flat=True))
    duplicates = 0
    for digest in hashes:
        duplicates += digest in seen
        seen.add(digest)
    return duplicates


def deciders(datanet: Datanet, uploader) -> list[str]:
    """Who may accept this uploader's records: the owner and validators, never the uploader."""
    names = [datanet.owner.username] + list(
        Membership.objects.filter(datanet=datanet, role__in=[Role.VALIDATOR, Role.OWNER])
        .select_related("user")
        .values_list("user__username", flat=True)
    )
    return [n for n in dict.fromkeys(names) if n != uploader.username]


def review(datanet: Datanet, user, needs: int | None = None) -> dict:
    """What happens to this user's uploads, and who decides, in plain words."""
    needs = services.votes_needed(datanet, user) if needs is None else needs
    if needs == 0:
        text = (
            "Your records are accepted as soon as you confirm: this Datanet accepts uploads from its owner and "
            "validators at once. They are added to its log as a new version, ready to train on."
        )
        return {"accepted_at_once": True, "votes_needed": 0, "deciders": [], "text": text}
    people = deciders(datanet, user)
    votes = "one accepting vote" if needs == 1 else f"{needs} accepting votes"
    text = f"Your records will wait for review: each needs {votes} from a validator other than you"
    text += f" ({', '.join(people)})." if people else "."
    text += " Until then they are not used for training."
    if len(people) < needs:
        text += f" Right now {len(people) or 'nobody'} besides you can vote, so they cannot be accepted yet: "
        if datanet.owner_id == user.pk:
            text += "add validators under “Members & requests”, or choose “accepted at once” under Edit."
        else:
            text += f"ask the owner, {datanet.owner.username}, to add validators."
    return {"accepted_at_once": False, "votes_needed": needs, "deciders": people, "text": text}


def policy_text(datanet: Datanet) -> str:
    if datanet.review_policy == ReviewPolicy.TRUSTED:
        return "Uploads by the owner and validators are accepted at once; others wait for a validator's vote."
    n = datanet.review_votes
    return f"Every upload waits for {'one validator vote' if n == 1 else f'{n} validator votes'}, the owner's too."


def next_steps(batch: UploadBatch) -> str:
    """What the uploader reads under an upload report."""
    if batch.status == "failed":
        return "Nothing was stored. Fix the rows listed and upload the file again."
    if not batch.is_final:
        return "The file is being read; this report updates when it is done."
    if not batch.rows_added:
        return "Nothing new was stored: every row is already in this Datanet."
    if not batch.rows.filter(status=Contribution.Status.PENDING).exists():
        return "Your records are in the Datanet's log and ready to train on."
    return review(batch.datanet, batch.uploader, batch.rows.first().needs_votes)["text"]


# --- The file between preview and confirm ----------------------------------------------------


def _folder() -> Path:
    folder = Path(settings.MEDIA_ROOT) / "upload-previews"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def stage(user, datanet: Datanet, filename: str, data: bytes, options: dict) -> tuple[str, dict]:
    """Preview the file and keep it for the confirm step; nothing goes into the Datanet."""
    report = preview(user, datanet, filename, data, options)
    folder, token = _folder(), secrets.token_hex(16)
    _sweep(folder)
    note = {"user": user.pk, "datanet": datanet.pk, "filename": report["filename"], "options": options}
    (folder / f"{token}.upload").write_bytes(data)
    (folder / f"{token}.json").write_text(json.dumps(note))
    return token, report


def _sweep(folder: Path) -> None:
    cutoff = time.time() - KEEP_SECONDS
    for path in folder.iterdir():
        if path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)


def _staged(user, datanet: Datanet, token: str) -> tuple[dict, Path]:
    if not TOKEN.match(token or ""):
        raise DatanetError(GONE, 404)
    note_path = _folder() / f"{token}.json"
    try:
        note = json.loads(note_path.read_text())
    except (OSError, ValueError):
        raise DatanetError(GONE, 404) from None
    if note.get("user") != user.pk or note.get("datanet") != datanet.pk:
        raise DatanetError(GONE, 404)  # someone else's preview: as if it did not exist
    return note, note_path.with_suffix(".upload")


def recheck(user, datanet: Datanet, token: str, columns: dict) -> dict:
    """The preview again, with the person's choice for each column."""
    note, path = _staged(user, datanet, token)
    try:
        data = path.read_bytes()
    except OSError:
        raise DatanetError(GONE, 404) from None
    return preview(user, datanet, note["filename"], data, {**note["options"], "columns": columns})


def confirm(user, datanet: Datanet, token: str, columns: dict) -> UploadBatch:
    """Store the previewed file with the chosen columns (every row or none); the token is spent."""
    note, path = _staged(user, datanet, token)
    try:
        data = path.read_bytes()
        path.unlink()  # a second confirm of the same token finds nothing
    except OSError:
        raise DatanetError(GONE, 404) from None
    path.with_suffix(".json").unlink(missing_ok=True)
    return services.start_upload(user, datanet, note["filename"], data, {**note["options"], "columns": columns})
