"""Parquet files that unpack into far more than their size (a "decompression bomb": one 1 MB string
stored once in a dictionary page and referenced by every row) are refused from their dictionaries,
before any value is decoded, with a message; ordinary files still read, nested text included.
Through the API, a Parquet upload is never parsed in the web request: a worker does it."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import given, settings
from hypothesis import strategies as st

from datanets.parsing import Limits, UploadError, parse_upload
from tests.helpers import BASE_DIR, wait_until

BIG = "a" * 1_000_000


def parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", use_dictionary=True)
    return buffer.getvalue()


def bomb() -> bytes:
    """500 rows of one 1 MB string in two columns: under 1 KB on disk, 1 GB once decoded."""
    return parquet(pa.table({"instruction": [BIG] * 500, "output": [BIG] * 500}))


def test_the_bomb_is_small_and_refused_before_it_unpacks():
    data = bomb()
    assert len(data) < 1024
    with pytest.raises(UploadError, match=r"A value in rows 1–64 is 1,000,000 bytes long; a record may hold at most"):
        parse_upload(data, "bomb.parquet", "instruction")


def test_parsing_the_bomb_stays_within_a_small_memory_bound(tmp_path):
    """Measured in a fresh process: peak RSS parsing the bomb (it was 2.6 GB before the bounded reader)."""
    path = tmp_path / "bomb.parquet"
    path.write_bytes(bomb())
    code = (
        "import sys\n"
        "from datanets.parsing import UploadError, parse_upload\n"
        "try:\n    parse_upload(open(sys.argv[1], 'rb').read(), 'bomb.parquet', 'instruction')\n"
        "except UploadError:\n    pass\n"
        # VmHWM, not ru_maxrss: the latter keeps the forking parent's high-water mark across exec
        "print([line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')][0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], cwd=BASE_DIR, capture_output=True, text=True)
    peak_mb = int(out.stdout.split()[-1]) / 1024
    assert peak_mb < 300, f"{peak_mb:.0f} MB"


def test_a_nested_bomb_in_a_chat_column_is_refused_too():
    messages = [{"role": "user", "content": BIG}] * 1000 + [{"role": "assistant", "content": "ok"}]
    data = parquet(pa.table({"messages": [messages]}))
    assert len(data) < 10_000
    with pytest.raises(UploadError, match="is 1,000,000 bytes long"):
        parse_upload(data, "chat.parquet", "chat")


def test_many_moderate_values_are_capped_in_total():
    data = parquet(pa.table({"instruction": ["b" * 10_000] * 2_000, "output": ["ok"] * 2_000}))
    limits = Limits(min_unpack_bytes=1_000_000)  # the floor lowered so a small test file reaches it
    with pytest.raises(UploadError, match="unpacks to more than 1,000,000 bytes of text"):
        parse_upload(data, "many.parquet", "instruction", limits=limits)
    # under the default floor (64 MB) the same 20 MB of text reads
    assert len(parse_upload(data, "many.parquet", "instruction").records) == 2_000


def test_ordinary_nested_parquet_still_reads():
    chats = [[{"role": "user", "content": f"Q{i}?"}, {"role": "assistant", "content": f"A{i}."}] for i in range(200)]
    result = parse_upload(parquet(pa.table({"messages": chats})), "chat.parquet", "chat")
    assert len(result.records) == 200 and result.records[7][1]["messages"][1]["content"] == "A7."


def test_a_file_that_is_not_parquet_says_so():
    with pytest.raises(UploadError, match="This is not a readable Parquet file."):
        parse_upload(b"not parquet at all", "x.parquet", "instruction")


def test_the_row_count_comes_from_the_metadata():
    data = parquet(pa.table({"text": ["x"] * 30}))
    with pytest.raises(UploadError, match="The file has 30 rows; the limit is 20"):
        parse_upload(data, "t.parquet", "text", limits=Limits(max_rows=20))


@pytest.mark.django_db(transaction=True)
def test_an_uploaded_bomb_is_parsed_by_a_worker_and_fails_with_a_message(
    celery_worker_process, make_datanet, user, client
):
    datanet = make_datanet(owner=user, slug="bombs")
    client.force_login(user)
    upload = SimpleUploadedFile("bomb.parquet", bomb())
    sent = client.post(f"/api/v1/datanets/{datanet.slug}/uploads/", {"file": upload})
    assert sent.status_code == 202, sent.content  # queued for a worker: never parsed in the web request
    status = f"/api/v1/datanets/{datanet.slug}/uploads/{sent.json()['id']}/"
    wait_until(lambda: client.get(status).json()["status"] in ("failed", "succeeded"), timeout=60)
    report = client.get(status).json()
    assert report["status"] == "failed" and "1,000,000 bytes long" in report["message"], json.dumps(report)
    assert not datanet.contributions.exists()


@settings(max_examples=150, deadline=None)
@given(cuts=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6))
def test_damaged_parquet_files_are_refused_with_a_message_never_a_crash(cuts):
    """A valid file with some of its bytes changed: read, or refused as an UploadError, nothing else."""
    good = bytearray(parquet(pa.table({"instruction": [f"Q{i}?" for i in range(50)], "output": ["A."] * 50})))
    for at, value in cuts:
        good[at % len(good)] = value
    try:
        parse_upload(bytes(good), "x.parquet", "instruction")
    except UploadError:
        pass
