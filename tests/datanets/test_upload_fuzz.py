"""Hostile and malformed uploads through the real API: always a 4xx with a message,
never a 5xx, and nothing stored from a failed upload."""

from __future__ import annotations

import io
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from datanets.models import Contribution, UploadBatch
from tests.factories import alpaca, jsonl

pytestmark = pytest.mark.django_db
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
UPLOAD_FIELDS = {"file", "file_format", "txt_mode", "mapping", "non_field_errors"}  # the upload form's fields


@pytest.fixture
def uploader(make_datanet):
    datanet = make_datanet()
    client = APIClient()
    client.force_authenticate(datanet.owner)

    def upload(data: bytes, name: str = "f.jsonl", **fields):
        f = io.BytesIO(data)
        f.name = name
        return client.post(f"/api/v1/datanets/{datanet.slug}/uploads/", {"file": f, **fields}, format="multipart")

    upload.datanet = datanet
    return upload


def shown_message(body: dict) -> str:
    """What a person reads about a refused upload: the failed upload report's message, DRF's
    detail, or the errors under the form fields (e.g. {"file": ["The submitted file is empty."]})."""
    if "status" in body:  # the upload report
        assert body["status"] == "failed", body
        assert all(error["message"].strip() for error in body["errors"]), body
        return body["message"] or ""
    if "detail" in body:
        return str(body["detail"])
    assert body and set(body) <= UPLOAD_FIELDS, body  # form errors, each under its field
    return " ".join(message for errors in body.values() for message in errors)


def assert_refused_cleanly(response, before: int):
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    body = response.json()
    assert re.search(r"[A-Za-z]{2,}", shown_message(body)), body  # words, not an empty or bare code
    assert Contribution.objects.count() == before


@FUZZ
@given(
    data=st.binary(min_size=0, max_size=2000),
    name=st.sampled_from(["a.jsonl", "a.json", "a.csv", "a.parquet", "a.txt"]),
)
def test_random_bytes_never_cause_a_server_error(uploader, data, name):
    before = Contribution.objects.count()
    response = uploader(data, name)
    assert response.status_code < 500, response.content[:300]
    if response.status_code >= 400:
        assert_refused_cleanly(response, before)


@FUZZ
@given(
    rows=st.lists(
        st.dictionaries(
            st.text(max_size=12),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.text(max_size=30),
                lambda children: (
                    st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
                ),
                max_leaves=8,
            ),
            max_size=5,
        ),
        min_size=1,
        max_size=8,
    )
)
def test_arbitrary_json_rows_are_checked_row_by_row(uploader, rows):
    before = Contribution.objects.count()
    response = uploader(jsonl(rows))
    assert response.status_code < 500
    if response.status_code == 422:
        report = response.json()
        assert report["errors"] and all({"row", "field", "message"} <= set(e) for e in report["errors"])
        assert Contribution.objects.count() == before


@pytest.mark.parametrize(
    "data, name, text",
    [
        (b"", "a.jsonl", "empty"),
        (b"   \n\n", "a.jsonl", "empty"),
        ("\ufeff".encode() + jsonl(alpaca(2)), "bom.jsonl", None),  # a UTF-8 BOM is fine
        (jsonl(alpaca(2)).decode().encode("utf-16"), "u16.jsonl", None),  # so is UTF-16 with a BOM
        ('{"instruction": "caf\xe9?", "output": "x"}'.encode("latin-1"), "latin.jsonl", "not UTF-8"),
        (b"[" * 100000 + b"]" * 100000, "deep.json", "nested too deeply"),
        (b'{"instruction": "' + b"x" * 60000 + b'", "output": "y"}', "huge.jsonl", "limit is"),
        (b"instruction,output\nhello,world,extra\n", "cols.csv", "has 3 fields"),
        (b"instruction,instruction\na,b\n", "dup.csv", "repeats a column"),
        (b"hello\n", "x.txt", "plain-text Datanets only"),
        (b'{"a": 1}', "x.exe", "Cannot tell the format"),
        (b'"just a string"', "x.json", "array of records"),
        (b'{"instruction": "\\u0000", "output": "x"}', "nul.jsonl", "NUL"),
        (b'{"instruction": "\\ud800", "output": "x"}', "surrogate.jsonl", "invalid Unicode"),
    ],
)
def test_specific_bad_files_get_a_clear_message(uploader, data, name, text):
    response = uploader(data, name)
    if text is None:
        assert response.status_code == 201, response.json()
        return
    assert_refused_cleanly(response, 0)
    assert text in json.dumps(response.json())


def test_formula_cells_are_stored_inert_and_escaped_on_csv_export(uploader, client):
    datanet = uploader.datanet
    response = uploader(b"instruction,output\n\"=cmd|' /C calc'!A0\",@SUM(1+1)\n", "evil.csv")
    assert response.status_code == 201
    row = Contribution.objects.get()
    assert row.content["instruction"] == "=cmd|' /C calc'!A0"  # stored exactly as given
    assert row.status == "accepted"  # the owner's upload, under the default review policy
    client.force_login(datanet.owner)
    exported = b"".join(client.get(f"/datanets/{datanet.slug}/export.csv").streaming_content).decode()
    assert "'=cmd|' /C calc'!A0" in exported and "'@SUM(1+1)" in exported


def test_an_upload_over_the_row_limit_is_refused_whole(uploader, settings):
    settings.DATANET_MAX_ROWS = 3
    response = uploader(jsonl(alpaca(5)))
    assert response.status_code == 422 and "more than 3 rows" in response.json()["message"]
    assert not Contribution.objects.exists()


def test_an_upload_over_the_size_limit_is_a_413(uploader, settings):
    settings.MAX_UPLOAD_BYTES = 2000
    response = uploader(jsonl(alpaca(100)))
    assert response.status_code == 413 and "limit" in response.json()["detail"]
    assert not UploadBatch.objects.exists()


def test_column_mapping_maps_other_names(uploader):
    data = jsonl([{"q": "Why?", "a": "Because."}])
    assert uploader(data).status_code == 422
    response = uploader(data, mapping=json.dumps({"instruction": "q", "output": "a"}))
    assert response.status_code == 201, response.json()
    assert Contribution.objects.get().content == {"instruction": "Why?", "input": "", "output": "Because."}
