"""Upload parsing: bytes of a JSONL / JSON / CSV / Parquet / TXT file → normalised
records for a Datanet's schema, with an error per bad row (row, field, message).

No Django here: limits arrive as a Limits value, so the bench and the Celery task
call the same code. A whole-file problem (size, encoding, format) raises
UploadError; row problems are collected and the caller stores nothing if any.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from datanets.readers import UploadError, decode_text, rows_csv, rows_json, rows_jsonl, rows_parquet, rows_txt

__all__ = ["UploadError", "decode_text", "parse_upload"]

FORMATS = ("jsonl", "json", "csv", "parquet", "txt")
EXTENSIONS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".parquet": "parquet",
    ".txt": "txt",
}
MAX_REPORTED_ERRORS = 200
ROLES = {"system", "user", "assistant"}
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
# Source columns tried, in order, for each target field when no mapping is given.
ALIASES = {
    "text": ("text", "content", "body"),
    "instruction": ("instruction", "prompt", "question", "query"),
    "input": ("input", "context"),
    "output": ("output", "response", "completion", "answer"),
    "messages": ("messages", "conversations"),
}
SCHEMA_FIELDS = {"text": ("text",), "instruction": ("instruction", "input", "output"), "chat": ("messages",)}
FIELD_LABELS = {"text": "Text", "instruction": "Instruction", "input": "Input", "output": "Answer",
                "messages": "Conversation"}  # fmt: skip
EXTRA, IGNORE = "extra", "ignore"  # a column kept in the record's extra data, or left out on purpose
CHOICE_LABELS = {EXTRA: "Keep as extra data", IGNORE: "Leave out"}


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 200 * 1024 * 1024
    max_rows: int = 1_000_000
    max_row_chars: int = 50_000
    # A compressed file (Parquet) may unpack to this many times its size, and at least the floor:
    # text compresses 3-10x, a decompression bomb by millions.
    max_unpack_ratio: int = 50
    min_unpack_bytes: int = 64 * 1024 * 1024

    def decoded_bytes(self, size: int) -> int:
        return max(self.min_unpack_bytes, size * self.max_unpack_ratio)


@dataclass
class RowError:
    row: int
    field: str
    message: str

    def as_dict(self) -> dict:
        return {"row": self.row, "field": self.field, "message": self.message}


@dataclass
class ParseResult:
    records: list[tuple[int, dict, str]] = field(default_factory=list)  # (row, content, sha256)
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0
    mapping: dict[str, str] = field(default_factory=dict)  # target field → source column
    columns: dict[str, str] = field(default_factory=dict)  # every source column → field, EXTRA or IGNORE
    rows_with_extra: int = 0

    def add_error(self, row: int, field_name: str, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(RowError(row, field_name, message))


def detect_format(filename: str, requested: str | None = None) -> str:
    if requested and requested != "auto":
        if requested not in FORMATS:
            raise UploadError(f"Unknown format {requested!r}; use one of {', '.join(FORMATS)}.")
        return requested
    lowered = filename.lower()
    for ext, fmt in EXTENSIONS.items():
        if lowered.endswith(ext):
            return fmt
    raise UploadError("Cannot tell the format from the file name; name it .jsonl, .json, .csv, .parquet or .txt.")


def content_hash(content: dict) -> str:
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _text_value(value, name: str, required: bool) -> tuple[str | None, str | None]:
    """(value, error) for a text field."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return (None, f"{name} is required and empty.") if required else ("", None)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None, f"{name} must be text, not {type(value).__name__}."
    text = str(value)
    if "\x00" in text:
        return None, f"{name} contains a NUL character."
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return None, f"{name} contains invalid Unicode (a lone surrogate)."
    return text, None


def _messages(value, name: str) -> tuple[list | None, str | None]:
    if not isinstance(value, list) or not value:
        return None, f"{name} must be a non-empty list of messages."
    if len(value) > 500:
        return None, f"{name} has more than 500 messages."
    out = []
    for i, message in enumerate(value, start=1):
        if not isinstance(message, dict):
            return None, f"message {i} must be an object with role and content."
        role = message.get("role", message.get("from"))
        role = SHAREGPT_ROLES.get(role, role) if isinstance(role, str) else role
        if role not in ROLES:
            return None, f"message {i} has role {role!r}; use system, user or assistant."
        content, error = _text_value(message.get("content", message.get("value")), f"message {i} content", True)
        if error:
            return None, error
        out.append({"role": role, "content": content})
    roles = {m["role"] for m in out}
    if "user" not in roles or "assistant" not in roles:
        return None, f"{name} needs at least one user and one assistant message."
    return out, None


def resolve_mapping(schema: str, columns: list[str], mapping: dict[str, str]) -> dict[str, str]:
    """target field → source column, from the user's mapping or the known aliases."""
    resolved = {}
    for target in SCHEMA_FIELDS[schema]:
        if mapping.get(target):
            resolved[target] = mapping[target]
            continue
        for alias in ALIASES[target]:
            if alias in columns:
                resolved[target] = alias
                break
    return resolved


def resolve_columns(schema: str, columns: list[str], mapping: dict[str, str], choices: dict[str, str]) -> dict:
    """Every column of the file → a schema field, EXTRA or IGNORE.

    `mapping` (field → column) and the aliases give the defaults; `choices` (column → field,
    EXTRA or IGNORE) overrides them column by column. Unclaimed columns are kept as extra.
    """
    fields = SCHEMA_FIELDS[schema]
    for column in [*mapping.values(), *choices]:
        if column not in columns:
            named = ", ".join(f"“{c}”" for c in columns[:20]) or "none"
            raise UploadError(f"The file has no column “{column}”. Its columns are: {named}.")
    for choice in choices.values():
        if choice not in (*fields, EXTRA, IGNORE):
            raise UploadError(f"“{choice}” is not a field of this Datanet; choose one of {', '.join(fields)}.")
    claimed = {choice for choice in choices.values() if choice in fields}
    defaults = {col: target for target, col in resolve_mapping(schema, columns, mapping).items()}
    resolved = {}
    for column in columns:
        choice = choices.get(column, defaults.get(column, EXTRA))
        resolved[column] = EXTRA if column not in choices and choice in claimed else choice
    seen: dict[str, str] = {}
    for column, choice in resolved.items():
        if choice in fields and choice in seen:
            raise UploadError(
                f"Columns “{seen[choice]}” and “{column}” both go to {FIELD_LABELS[choice]}; choose one of them."
            )
        seen[choice] = column
    return resolved


def _extra_value(value, name: str) -> tuple[object, str | None]:
    """A value kept as extra data: JSON as it came; anything else (dates, bytes) as text."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
        text.encode("utf-8")
    except (ValueError, UnicodeEncodeError, RecursionError):
        return None, f"{name} cannot be stored (invalid Unicode or nested too deeply)."
    kept = json.loads(text)
    if _has_nul(kept):
        return None, f"{name} contains a NUL character."
    return kept, None


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    return isinstance(value, list) and any(_has_nul(v) for v in value)


def normalise(
    schema: str, row: object, mapping: dict[str, str], limits: Limits, extra: tuple[str, ...] = ()
) -> tuple[dict | None, RowError | None]:
    """A parsed row → content for the schema, or the first error found (row number filled later).

    Columns named in `extra` that the row has are kept under content["extra"]."""
    if isinstance(row, str) and schema == "text":
        row = {"text": row}
    if not isinstance(row, dict):
        return None, RowError(0, "", f"Each record must be an object, not {type(row).__name__}.")
    content: dict = {}
    for target in SCHEMA_FIELDS[schema]:
        source = mapping.get(target)
        if source is None:
            if target == "input":
                content["input"] = ""
                continue
            label = FIELD_LABELS[target]
            return None, RowError(0, target, f"No column gives the {label}; choose one of the file's columns for it.")
        value = row.get(source)
        if target == "messages":
            parsed, error = _messages(value, source)
        else:
            parsed, error = _text_value(value, source, required=target != "input")
        if error:
            return None, RowError(0, source, error)
        content[target] = parsed
    kept = {}
    for column in extra:
        if column in row:
            kept[column], error = _extra_value(row[column], column)
            if error:
                return None, RowError(0, column, error)
    if kept:
        content["extra"] = kept
    size = len(json.dumps(content, ensure_ascii=False))
    if size > limits.max_row_chars:
        return None, RowError(0, "", f"The record is {size:,} characters; the limit is {limits.max_row_chars:,}.")
    return content, None


def _columns_of(rows: list[tuple[int, object]]) -> list[str]:
    """The union of every row's fields, in the order they first appear."""
    seen: dict[str, None] = {}
    for _, row in rows:
        if isinstance(row, dict):
            for key in row:
                seen.setdefault(str(key), None)
    return list(seen)


def parse_upload(
    data: bytes,
    filename: str,
    schema: str,
    *,
    file_format: str | None = None,
    txt_paragraphs: bool = False,
    mapping: dict[str, str] | None = None,
    columns: dict[str, str] | None = None,
    limits: Limits = Limits(),
    progress=None,
) -> ParseResult:
    """Parse and check every row. `progress(done_rows)` is called every 5,000 rows.

    The fields are the union over all rows; `columns` (column → field, EXTRA or IGNORE)
    overrides what `mapping` and the aliases decide, column by column."""
    if schema not in SCHEMA_FIELDS:
        raise UploadError(f"Unknown schema {schema!r}.")
    if len(data) > limits.max_bytes:
        raise UploadError(f"The file is {len(data):,} bytes; the limit is {limits.max_bytes:,}.")
    if not data.strip():
        raise UploadError("The file is empty.")
    fmt = detect_format(filename, file_format)
    result = ParseResult()
    if fmt == "parquet":
        rows = rows_parquet(data, limits.max_rows, limits.max_row_chars * 4, limits.decoded_bytes(len(data)))
    else:
        text = decode_text(data)
        if fmt == "txt":
            if schema != "text":
                raise UploadError("TXT files fit plain-text Datanets only; use JSONL, CSV or Parquet here.")
            rows = rows_txt(text, txt_paragraphs)
        elif fmt == "jsonl":
            rows = rows_jsonl(text, result.add_error)
        elif fmt == "json":
            rows = rows_json(text)
        else:
            rows = rows_csv(text, result.add_error, limits.max_row_chars)
    parsed = []
    for count, item in enumerate(rows, start=1):
        if count > limits.max_rows:
            raise UploadError(f"The file has more than {limits.max_rows:,} rows; split it.")
        parsed.append(item)
    user_mapping = {k: v for k, v in (mapping or {}).items() if v}
    result.columns = resolve_columns(schema, _columns_of(parsed), user_mapping, columns or {})
    result.mapping = {choice: col for col, choice in result.columns.items() if choice in SCHEMA_FIELDS[schema]}
    extra = tuple(col for col, choice in result.columns.items() if choice == EXTRA)
    for count, (number, row) in enumerate(parsed, start=1):
        content, error = normalise(schema, row, result.mapping, limits, extra)
        if error:
            result.add_error(number, error.field, error.message)
        else:
            result.rows_with_extra += "extra" in content
            result.records.append((number, content, content_hash(content)))
        if progress and count % 5000 == 0:
            progress(count)
    if not result.records and not result.error_count:
        raise UploadError("The file holds no records.")
    result.errors.sort(key=lambda e: e.row)
    return result
