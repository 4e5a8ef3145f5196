"""Readers: the bytes of a JSONL / JSON / CSV / Parquet / TXT file → (row number, row) pairs.

No Django here. A whole-file problem raises UploadError; a bad row is passed to `add_error`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator


class UploadError(ValueError):
    """The file as a whole cannot be used; the message says why, for a person."""


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


def rows_jsonl(text: str, add_error) -> Iterator[tuple[int, object]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except RecursionError:
            add_error(number, "", "The JSON is nested too deeply.")
        except ValueError as exc:
            add_error(number, "", f"Not valid JSON: {exc.msg} at column {exc.colno}.")


def rows_json(text: str) -> Iterator[tuple[int, object]]:
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


def rows_csv(text: str, add_error, max_row_chars: int) -> Iterator[tuple[int, object]]:
    csv.field_size_limit(max_row_chars + 1)
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
                add_error(number, "", f"This row has {len(cells)} fields; the header has {len(header)}.")
                continue
            yield number, dict(zip(header, cells, strict=True))
    except csv.Error as exc:
        raise UploadError(f"The CSV could not be read near line {reader.line_num}: {exc}.") from None


PARQUET_BATCH_ROWS = 64  # rows decoded at a time, each checked before it becomes Python objects


def rows_parquet(
    data: bytes, max_rows: int, max_value_bytes: int, max_total_bytes: int
) -> Iterator[tuple[int, object]]:
    """Rows of a Parquet file, read so that a small file cannot unpack into a huge one: the row count
    comes from the metadata, every text column (nested ones too) is read still dictionary-encoded, and
    the decoded length of each batch's values is measured on the dictionary before any is decoded."""
    import pyarrow as pa

    parquet = _open_parquet(data)
    rows = parquet.metadata.num_rows
    if rows > max_rows:
        raise UploadError(f"The file has {rows:,} rows; the limit is {max_rows:,}. Split it.")
    number, total = 0, 0
    try:
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            for column in batch.columns:
                longest, size = _decoded_bytes(column)
                if longest > max_value_bytes:
                    raise UploadError(
                        f"A value in rows {number + 1:,}–{number + batch.num_rows:,} is {longest:,} bytes long; "
                        f"a record may hold at most {max_value_bytes:,}."
                    )
                total += size
            if total > max_total_bytes:
                raise UploadError(
                    f"The file unpacks to more than {max_total_bytes:,} bytes of text, far more than its "
                    f"{len(data):,} bytes suggest; it is refused. Write its values out plainly and split it."
                )
            for row in batch.to_pylist():
                number += 1
                yield number, row
    except (pa.ArrowException, OSError, ValueError) as exc:
        if isinstance(exc, UploadError):
            raise
        raise UploadError(f"The Parquet file is damaged after row {number}.") from None


def _open_parquet(data: bytes):
    """The file with every BYTE_ARRAY (text) column, nested or not, read as dictionary arrays."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.ParquetFile(io.BytesIO(data)).schema
        text = [schema.column(i).path for i in range(len(schema)) if schema.column(i).physical_type == "BYTE_ARRAY"]
        return pq.ParquetFile(io.BytesIO(data), read_dictionary=text)
    except (pa.ArrowException, OSError, ValueError):
        raise UploadError("This is not a readable Parquet file.") from None


def _decoded_bytes(array) -> tuple[int, int]:
    """(longest value, total) in bytes once decoded, without decoding: dictionary lengths taken by
    index, nested lists and structs walked down to their leaves; fixed-width values by their buffers."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(array, pa.ChunkedArray):
        parts = [_decoded_bytes(chunk) for chunk in array.chunks]
        return max((p[0] for p in parts), default=0), sum(p[1] for p in parts)
    kind = array.type
    if pa.types.is_dictionary(kind):
        lengths = pc.take(_lengths(array.dictionary), array.indices)
    elif pa.types.is_string(kind) or pa.types.is_binary(kind) or pa.types.is_large_string(kind):
        lengths = _lengths(array)
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _decoded_bytes(array.flatten())
    elif pa.types.is_struct(kind):
        parts = [_decoded_bytes(array.field(i)) for i in range(kind.num_fields)]
        return max((p[0] for p in parts), default=0), sum(p[1] for p in parts)
    else:
        return 0, array.nbytes
    longest, total = pc.max(lengths).as_py(), pc.sum(lengths).as_py()
    return longest or 0, total or 0


def _lengths(array):
    import pyarrow.compute as pc

    return pc.binary_length(array)


def rows_txt(text: str, paragraphs: bool) -> Iterator[tuple[int, object]]:
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
