"""The Datanet REST API: create, update, versions and proofs, async uploads on a real worker."""

from __future__ import annotations

import io

import pytest

from datanets import merkle
from datanets.models import Contribution, Datanet
from tests.factories import alpaca, jsonl
from tests.helpers import api_client as api
from tests.helpers import wait_until


@pytest.mark.django_db
def test_create_and_update_a_datanet(user, other_user):
    body = {"name": "Tax answers", "licence": "CC-BY-4.0", "visibility": "permissioned", "schema": "instruction",
            "domain_tags": ["finance"]}  # fmt: skip
    created = api(user).post("/api/v1/datanets/", body, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["slug"] == "tax-answers" and created.json()["owner"] == "alice"
    assert api(user).post("/api/v1/datanets/", body, format="json").status_code == 409
    assert (
        api(other_user).patch("/api/v1/datanets/tax-answers/", {"description": "x"}, format="json").status_code == 403
    )
    changed = api(user).patch("/api/v1/datanets/tax-answers/", {"description": "Answers."}, format="json")
    assert changed.status_code == 200 and Datanet.objects.get().description == "Answers."
    frozen = api(user).patch("/api/v1/datanets/tax-answers/", {"schema": "chat"}, format="json")
    assert frozen.status_code == 409  # conflicts with the Datanet as it exists: its schema is fixed
    assert api(None).post("/api/v1/datanets/", body, format="json").status_code in (401, 403)
    bad = api(user).post("/api/v1/datanets/", {"name": "", "visibility": "secret"}, format="json")
    assert bad.status_code == 400 and "visibility" in bad.json()


@pytest.mark.django_db
def test_versions_proofs_and_verification_through_the_api(make_datanet, accepted):
    datanet = make_datanet()
    accepted(datanet, alpaca(6))
    accepted(datanet, alpaca(5, start=6))
    client = api(datanet.owner)
    base = f"/api/v1/datanets/{datanet.slug}"
    versions = client.get(f"{base}/versions/").json()
    assert [v["size"] for v in versions] == [11, 6]
    record = Contribution.objects.get(datanet=datanet, log_index=4)
    proof = client.get(f"{base}/records/{record.pk}/proof/?version=1").json()
    assert merkle.verify_inclusion(
        bytes.fromhex(proof["leaf_hash"]),
        4,
        6,
        [bytes.fromhex(h) for h in proof["proof"]],
        bytes.fromhex(proof["root"]),
    )
    cons = client.get(f"{base}/versions/consistency/?from=1&to=2").json()
    assert merkle.verify_consistency(
        6,
        11,
        bytes.fromhex(cons["old"]["root"]),
        bytes.fromhex(cons["new"]["root"]),
        [bytes.fromhex(h) for h in cons["proof"]],
    )
    assert client.get(f"{base}/verify/").json() == {"ok": True, "problems": []}
    assert client.get(f"{base}/versions/consistency/?from=9").status_code == 404
    assert client.get(f"{base}/versions/consistency/?from=abc").status_code == 400
    assert client.get(f"{base}/records/999999/proof/").status_code == 404
    late = Contribution.objects.get(datanet=datanet, log_index=8)
    assert client.get(f"{base}/records/{late.pk}/proof/?version=1").status_code == 404
    Contribution.objects.filter(pk=record.pk).update(content={"instruction": "edited", "input": "", "output": "x"})
    result = client.get(f"{base}/verify/").json()
    assert result["ok"] is False and len(result["problems"]) == 3


@pytest.mark.django_db
def test_validators_vote_through_the_api(make_datanet, roles):
    datanet = make_datanet()
    people = roles(datanet)
    f = io.BytesIO(jsonl(alpaca(2)))
    f.name = "two.jsonl"
    report = api(people["contributor"]).post(
        f"/api/v1/datanets/{datanet.slug}/uploads/", {"file": f}, format="multipart"
    )
    assert report.status_code == 201 and report.json()["rows_added"] == 2
    queue = api(people["validator"]).get(f"/api/v1/datanets/{datanet.slug}/contributions/?status=pending").json()
    first, second = (row["id"] for row in queue["results"])
    url = f"/api/v1/datanets/{datanet.slug}/contributions/{{}}/validations/"
    assert (
        api(people["validator"]).post(url.format(first), {"vote": "accept"}, format="json").json()["status"]
        == "accepted"
    )
    no_reason = api(people["validator"]).post(url.format(second), {"vote": "reject"}, format="json")
    assert no_reason.status_code == 400 and "reason" in no_reason.json()["detail"]
    again = api(people["validator"]).post(url.format(first), {"vote": "accept"}, format="json")
    assert again.status_code == 409
    assert api(people["contributor"]).post(url.format(second), {"vote": "accept"}, format="json").status_code == 403


@pytest.mark.django_db(transaction=True)
def test_a_large_upload_is_parsed_by_a_real_worker(celery_worker_process, make_datanet, settings):
    datanet = make_datanet()
    settings.DATANET_ASYNC_UPLOAD_BYTES = 1024  # this process queues; the worker process parses
    f = io.BytesIO(jsonl(alpaca(300)))
    f.name = "big.jsonl"
    client = api(datanet.owner)
    response = client.post(f"/api/v1/datanets/{datanet.slug}/uploads/", {"file": f}, format="multipart")
    assert response.status_code == 202, response.json()
    url = f"/api/v1/datanets/{datanet.slug}/uploads/{response.json()['id']}/"
    wait_until(lambda: client.get(url).json()["status"] in ("succeeded", "failed"), timeout=60)
    report = client.get(url).json()
    assert (report["status"], report["rows_added"], report["rows_done"]) == ("succeeded", 300, 300)
    assert Contribution.objects.filter(datanet=datanet).count() == 300
