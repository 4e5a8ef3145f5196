"""Uploads never drop a field: the fields are the union over all rows, unknown columns are kept
as extra data or left out on purpose; a preview (page and API dry_run) stores nothing."""

from __future__ import annotations

import io
import json
import re

import pytest
from django.test import Client
from rest_framework.test import APIClient

from datanets import services
from datanets.models import Contribution, UploadBatch
from datanets.parsing import parse_upload
from tests.factories import jsonl

pytestmark = pytest.mark.django_db


def late_input_rows() -> list[dict]:
    """Twelve rows without `input`, then row 13 with an input and a column no schema knows."""
    rows = [{"instruction": f"Clause {i}?", "output": f"Meaning {i}."} for i in range(1, 13)]
    rows.append({"instruction": "Clause 13?", "input": "Section 4.2 of the lease", "output": "Meaning 13.",
                 "source": "lease-2019.pdf"})  # fmt: skip
    return rows


def test_it_keeps_a_field_that_first_appears_in_row_13():
    result = parse_upload(jsonl(late_input_rows()), "late.jsonl", "instruction")
    contents = {row: content for row, content, _ in result.records}
    assert contents[13]["input"] == "Section 4.2 of the lease"
    assert contents[13]["extra"] == {"source": "lease-2019.pdf"}  # unknown: kept, not dropped
    assert contents[1] == {"instruction": "Clause 1?", "input": "", "output": "Meaning 1."}
    assert result.columns == {"instruction": "instruction", "output": "output", "input": "input", "source": "extra"}
    assert result.rows_with_extra == 1


def test_it_stores_row_13_with_its_input_and_extra_data(make_datanet):
    datanet = make_datanet()
    batch = services.start_upload(datanet.owner, datanet, "late.jsonl", jsonl(late_input_rows()), {})
    assert batch.status == "succeeded", batch.message
    row13 = Contribution.objects.get(datanet=datanet, source_row=13)
    assert row13.content["input"] == "Section 4.2 of the lease"
    assert row13.content["extra"] == {"source": "lease-2019.pdf"}
    assert services.verify(datanet) == []  # the extra data is inside what the log commits to


def test_a_column_is_only_left_out_when_the_uploader_says_so(make_datanet):
    datanet = make_datanet()
    options = {"columns": {"source": "ignore", "input": "extra"}}
    services.start_upload(datanet.owner, datanet, "late.jsonl", jsonl(late_input_rows()), options)
    row13 = Contribution.objects.get(datanet=datanet, source_row=13)
    assert row13.content["input"] == "" and row13.content["extra"] == {"input": "Section 4.2 of the lease"}


@pytest.mark.parametrize(
    "columns, message",
    [
        ({"nope": "extra"}, "The file has no column “nope”"),
        ({"source": "instruction", "instruction": "instruction"}, "both go to Instruction"),
        ({"source": "weird"}, "is not a field of this Datanet"),
    ],
)
def test_a_bad_column_choice_is_refused_with_a_plain_message(make_datanet, columns, message):
    datanet = make_datanet()
    batch = services.start_upload(datanet.owner, datanet, "late.jsonl", jsonl(late_input_rows()), {"columns": columns})
    assert batch.status == "failed" and message in batch.message
    assert not Contribution.objects.exists()


def upload_file(name: str, data: bytes) -> io.BytesIO:
    f = io.BytesIO(data)
    f.name = name
    return f


def test_the_api_dry_run_stores_nothing_and_returns_the_preview(make_datanet):
    datanet = make_datanet()
    services.start_upload(datanet.owner, datanet, "first.jsonl", jsonl(late_input_rows()[:2]), {})
    before = Contribution.objects.count()
    client = APIClient()
    client.force_authenticate(datanet.owner)
    url = f"/api/v1/datanets/{datanet.slug}/uploads/"
    rows = late_input_rows() + [{"instruction": "", "output": "no question"}]
    response = client.post(url, {"file": upload_file("f.jsonl", jsonl(rows)), "dry_run": "true"}, format="multipart")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["format"], body["rows"], body["new_records"], body["duplicate_rows"], body["bad_rows"]) == (
        "JSONL", 14, 11, 2, 1,
    )  # fmt: skip
    assert {"name": "source", "use": "extra", "label": "Keep as extra data"} in body["columns"]
    assert body["errors"] == [{"row": 14, "field": "instruction", "message": "instruction is required and empty."}]
    assert body["sample"][0] == {"row": 1, "content": {"instruction": "Clause 1?", "input": "", "output": "Meaning 1."}}
    assert body["ready"] is False and body["review"]["accepted_at_once"] is True
    assert Contribution.objects.count() == before and UploadBatch.objects.count() == 1

    mapped = client.post(
        url, {"file": upload_file("g.jsonl", jsonl(late_input_rows())), "dry_run": True,
              "columns": json.dumps({"source": "ignore"})}, format="multipart",
    )  # fmt: skip
    assert mapped.status_code == 200 and mapped.json()["rows_with_extra"] == 0
    stored = client.post(
        url, {"file": upload_file("g.jsonl", jsonl(late_input_rows())), "columns": json.dumps({"source": "ignore"})},
        format="multipart",
    )  # fmt: skip
    assert stored.status_code == 201 and stored.json()["rows_added"] == 11
    assert "ready to train on" in stored.json()["next_steps"]
    bad = client.post(url, {"file": upload_file("g.jsonl", b'{"a": 1}'), "dry_run": True, "columns": "[1]"},
                          format="multipart")  # fmt: skip
    assert bad.status_code == 400 and "columns" in bad.json()


def test_a_dry_run_is_refused_to_those_who_may_not_contribute(make_datanet, make_user):
    datanet = make_datanet(visibility="permissioned")
    client = APIClient()
    client.force_authenticate(make_user("outsider"))
    f = upload_file("f.jsonl", jsonl(late_input_rows()))
    response = client.post(f"/api/v1/datanets/{datanet.slug}/uploads/", {"file": f, "dry_run": True})
    assert response.status_code == 403 and "dry" not in json.dumps(response.json())


def preview_page(client: Client, slug: str, data: bytes, name: str = "late.jsonl"):
    return client.post(f"/datanets/{slug}/contribute/", {"file": upload_file(name, data), "file_format": "auto"})


def test_the_page_previews_then_stores_only_on_confirm(make_datanet, make_user):
    datanet = make_datanet()
    client = Client()
    client.force_login(datanet.owner)
    page = preview_page(client, datanet.slug, jsonl(late_input_rows()))
    html = page.content.decode()
    assert page.status_code == 200 and "Check before storing" in html and "<code>source</code>" in html
    assert "Clause 1?" in html and re.search(r'<option value="extra" selected>', html)
    assert "from columns that are not fields" in html
    assert not Contribution.objects.exists() and not UploadBatch.objects.exists()
    token = re.search(r'name="token" value="([0-9a-f]{32})"', html).group(1)
    names = dict(re.findall(r'name="column-name-(\d+)" value="([^"]+)"', html))
    post = {"token": token, **{f"column-name-{i}": n for i, n in names.items()}}
    post.update({f"column-use-{i}": {"instruction": "instruction", "output": "output", "input": "input",
                                     "source": "ignore"}[n] for i, n in names.items()})  # fmt: skip

    stranger = Client()
    stranger.force_login(make_user("mallory"))  # may contribute to this public Datanet, not use alice's file
    assert stranger.post(f"/datanets/{datanet.slug}/contribute/", {**post, "step": "confirm"}).status_code == 404
    assert not Contribution.objects.exists()

    checked = client.post(f"/datanets/{datanet.slug}/contribute/", {**post, "step": "check"})
    assert checked.status_code == 200 and "from columns that are not fields" not in checked.content.decode()
    done = client.post(f"/datanets/{datanet.slug}/contribute/", {**post, "step": "confirm"})
    assert done.status_code == 302
    assert Contribution.objects.filter(status="accepted").count() == 13
    assert "extra" not in Contribution.objects.get(source_row=13).content
    again = client.post(f"/datanets/{datanet.slug}/contribute/", {**post, "step": "confirm"})
    assert again.status_code == 404 and "no longer available" in again.content.decode()
    report = client.get(done["Location"]).content.decode()
    assert "13 records accepted and added to version 1" in report and "ready to train on" in report


@pytest.mark.parametrize(
    "change, text",
    [
        ({"column-use-0": "wizard"}, "Choose what to do with the column"),
        ({"token": "../../etc/passwd"}, "no longer available"),
    ],
)
def test_a_tampered_confirm_is_refused_and_stores_nothing(make_datanet, change, text):
    datanet = make_datanet()
    client = Client()
    client.force_login(datanet.owner)
    html = preview_page(client, datanet.slug, jsonl(late_input_rows())).content.decode()
    token = re.search(r'name="token" value="([0-9a-f]{32})"', html).group(1)
    post = {"token": token, "column-name-0": "instruction", "column-use-0": "instruction", "step": "confirm"}
    response = client.post(f"/datanets/{datanet.slug}/contribute/", {**post, **change})
    assert 400 <= response.status_code < 500 and text in response.content.decode()
    assert not Contribution.objects.exists()


def test_a_broken_file_is_explained_on_the_page_and_nothing_is_kept(make_datanet):
    datanet = make_datanet()
    client = Client()
    client.force_login(datanet.owner)
    response = preview_page(client, datanet.slug, b"caf\xe9", "x.jsonl")
    assert response.status_code == 422 and "not UTF-8 text" in response.content.decode()
    assert not UploadBatch.objects.exists()
