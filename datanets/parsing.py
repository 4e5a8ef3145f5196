"""Upload parsing: bytes of a JSONL / JSON / CSV / Parquet / TXT file → normalised
records for a Datanet's schema, with an error per bad row (row, field, message).

No Django here: limits arrive as a Limits value, so the bench and the Celery task
call the same code. A whole-file problem (size, encoding, format) raises
UploadError; row problems are collected and the caller stores nothing if any.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

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


class UploadError(ValueError):
    """The file as a whole cannot be used; the message says why, for a person."""


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 200 * 1024 * 1024
    max_rows: int = 1_000_000
    max_row_chars: int = 50_000


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
    mapping: dict[str, str] = field(default_factory=dict)

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


def decode_text(data: bytes) -> str:
    """UTF-8 (BOM or not) or UTF-16 with a BOM; anything else is refused with the byte offset."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise UploadError("The file starts like UTF-16 but is not valid UTF-16.") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UploadError(f"The file is not UTF-8 text (bad byte at offset {exc.start}). Save it as UTF-8.") from None


def _rows_jsonl(text: str, result: ParseResult) -> Iterator[tuple[int, object]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except RecursionError:
            result.add_error(number, "", "The JSON is nested too deeply.")
        except ValueError as exc:
            result.add_error(number, "", f"Not valid JSON: {exc.msg} at column {exc.colno}.")


def _rows_json(text: str, result: ParseResult) -> Iterator[tuple[int, object]]:
    try:
        data = json.loads(text)
    except RecursionError:
        raise UploadError("The JSON is nested too deeply.") from None
    except ValueError as exc:
        raise UploadError(f"Not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.") from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise UploadError('A .json upload must be an array of records (or {"data": [...]}).')
    yield from enumerate(data, start=1)


def _rows_csv(text: str, result: ParseResult, limits: Limits) -> Iterator[tuple[int, object]]:
    csv.field_size_limit(limits.max_row_chars + 1)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise UploadError("The CSV file has no header row.")
        header = [h.strip() for h in header]
        if len(set(header)) != len(header):
            raise UploadError("The CSV header repeats a column name.")
        for number, cells in enumerate(reader, start=1):  # data rows count from 1 after the header
            if not cells or not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                result.add_error(number, "", f"This row has {len(cells)} fields; the header has {len(header)}.")
                continue
            yield number, dict(zip(header, cells, strict=True))
    except csv.Error as exc:
        raise UploadError(f"The CSV could not be read near line {reader.line_num}: {exc}.") from None


def _rows_parquet(data: bytes) -> Iterator[tuple[int, object]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(io.BytesIO(data))
    except (pa.ArrowException, OSError, ValueError):
        raise UploadError("This is not a readable Parquet file.") from None
    number = 0
    try:
        for batch in parquet.iter_batches(batch_size=5000):
            for row in batch.to_pylist():
                number += 1
                yield number, row
    except (pa.ArrowException, OSError, ValueError):
        raise UploadError(f"The Parquet file is damaged after row {number}.") from None


def _rows_txt(text: str, paragraphs: bool) -> Iterator[tuple[int, object]]:
    if not paragraphs:
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                yield number, {"text": line.strip()}
        return
    chunk: list[str] = []
    start = 1
    for number, line in enumerate([*text.splitlines(), ""], start=1):
        if line.strip():
            if not chunk:
                start = number
            chunk.append(line.rstrip())
        elif chunk:
            yield start, {"text": "\n".join(chunk).strip()}
            chunk = []


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


def normalise(schema: str, row: object, mapping: dict[str, str], limits: Limits) -> tuple[dict | None, RowError | None]:
    """A parsed row → content for the schema, or the first error found (row number filled later)."""
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
            return None, RowError(0, target, f"No column for {target!r}; map one of the file's columns to it.")
        value = row.get(source)
        if target == "messages":
            parsed, error = _messages(value, source)
        else:
            parsed, error = _text_value(value, source, required=target != "input")
        if error:
            return None, RowError(0, source, error)
        content[target] = parsed
    size = len(json.dumps(content, ensure_ascii=False))
    if size > limits.max_row_chars:
        return None, RowError(0, "", f"The record is {size:,} characters; the limit is {limits.max_row_chars:,}.")
    return content, None


def parse_upload(
    data: bytes,
    filename: str,
    schema: str,
    *,
    file_format: str | None = None,
    txt_paragraphs: bool = False,
    mapping: dict[str, str] | None = None,
    limits: Limits = Limits(),
    progress=None,
) -> ParseResult:
    """Parse and check every row. `progress(done_rows)` is called every 5,000 rows."""
    if schema not in SCHEMA_FIELDS:
        raise UploadError(f"Unknown schema {schema!r}.")
    if len(data) > limits.max_bytes:
        raise UploadError(f"The file is {len(data):,} bytes; the limit is {limits.max_bytes:,}.")
    if not data.strip():
        raise UploadError("The file is empty.")
    fmt = detect_format(filename, file_format)
    result = ParseResult()
    if fmt == "parquet":
        rows = _rows_parquet(data)
    else:
        text = decode_text(data)
        if fmt == "txt":
            if schema != "text":
                raise UploadError("TXT files fit plain-text Datanets only; use JSONL, CSV or Parquet here.")
            rows = _rows_txt(text, txt_paragraphs)
        elif fmt == "jsonl":
            rows = _rows_jsonl(text, result)
        elif fmt == "json":
            rows = _rows_json(text, result)
        else:
            rows = _rows_csv(text, result, limits)
    user_mapping = {k: v for k, v in (mapping or {}).items() if v}
    resolved: dict[str, str] | None = None
    for count, (number, row) in enumerate(rows, start=1):
        if count > limits.max_rows:
            raise UploadError(f"The file has more than {limits.max_rows:,} rows; split it.")
        if resolved is None:
            columns = list(row) if isinstance(row, dict) else []
            resolved = resolve_mapping(schema, columns, user_mapping)
            result.mapping = resolved
        content, error = normalise(schema, row, resolved, limits)
        if error:
            result.add_error(number, error.field, error.message)
        else:
            result.records.append((number, content, content_hash(content)))
        if progress and count % 5000 == 0:
            progress(count)
    if not result.records and not result.error_count:
        raise UploadError("The file holds no records.")
    return result
