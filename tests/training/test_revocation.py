"""Models follow the access they were trained under. When a member is removed from a private
Datanet, the models they trained on it are blocked for them (chat page, /v1, adapter and merged
exports), with a message saying why, unless the Datanet's owner allows such models; a job they
queued before the removal fails at start instead of training on the records."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from accounts.services import create_api_key
from datanets import services as datanet_services
from datanets.models import Role
from serving.models import MergedExport
from tests.training.jobs import finished_job
from training import services
from training.models import TrainingJob

pytestmark = pytest.mark.django_db

REFUSAL = "no longer have access to “Secret Cases”, which this model was trained on"


@pytest.fixture
def trained(make_datanet, make_user, accepted, base_model, tmp_path):
    owner, viewer = make_user("owner"), make_user("viewer")
    datanet = make_datanet(owner=owner, slug="secret-cases", visibility="private")
    accepted(datanet, [{"instruction": "Q?", "output": "A."}])
    datanet_services.set_member(owner, datanet, viewer, Role.VIEWER)
    job = finished_job(viewer, base_model, datanet, tmp_path)
    archive = tmp_path / "merged.zip"
    archive.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    merged = MergedExport.objects.create(owner=viewer, model_id=job.model_id, status="succeeded", archive=str(archive))
    return owner, viewer, datanet, job, merged


def uses(viewer, job, merged, v1: bool = True) -> dict[str, tuple[int, str]]:
    """Every way to use the model: status and body. (/v1 only where it is refused before the serving
    worker, which these tests do not start, would be asked.)"""
    web = Client()
    web.force_login(viewer)
    found = {
        "chat page": web.get(f"/chat/{job.model_id}/"),
        "adapter export": web.get(f"/api/v1/models/{job.model_id}/export/"),
        "merged download": web.get(f"/api/v1/exports/{merged.pk}/download/"),
        "model detail": web.get(f"/api/v1/models/{job.model_id}/"),
    }
    if v1:
        key = create_api_key(viewer, "k")[1]
        body = json.dumps({"model": job.model_id, "messages": [{"role": "user", "content": "Q?"}]})
        found["/v1"] = web.post("/v1/chat/completions", body, content_type="application/json",
                                HTTP_AUTHORIZATION=f"Bearer {key}")  # fmt: skip
    return {name: (r.status_code, _text(r)) for name, r in found.items()}


def _text(response) -> str:
    data = b"".join(response.streaming_content) if response.streaming else response.content
    if response.get("Content-Type", "").startswith("application/json"):
        return json.dumps(json.loads(data), ensure_ascii=False)
    return data.decode(errors="replace")


def test_a_removed_member_is_blocked_from_their_model_everywhere_with_a_reason(trained):
    owner, viewer, datanet, job, merged = trained
    assert all(status == 200 for status, _ in uses(viewer, job, merged, v1=False).values())
    datanet_services.remove_member(owner, datanet, viewer)
    for name, (status, body) in uses(viewer, job, merged).items():
        assert status in (403, 404) and REFUSAL in body, (name, status, body[:300])


def test_the_datanets_owner_may_let_models_outlive_access(trained):
    owner, viewer, datanet, job, merged = trained
    datanet_services.remove_member(owner, datanet, viewer)
    datanet.models_after_removal = "allow"
    datanet.save()
    found = uses(viewer, job, merged, v1=False)
    assert {name: status for name, (status, _) in found.items()} == dict.fromkeys(
        ["chat page", "adapter export", "merged download", "model detail"], 200
    )


def test_a_job_queued_before_the_removal_fails_at_start(trained, base_model, monkeypatch):
    owner, viewer, datanet, _, _ = trained
    monkeypatch.setattr("training.services.enqueue", lambda job, task: None)  # the worker is this test
    cfg = services.config_from("quick", {"schema": "instruction"}, base_model, [datanet])
    job = services.start_job(viewer, name="late", base_model=base_model, datanets=[datanet], cfg=cfg,
                             preset="quick", request_key="k1")  # fmt: skip
    datanet_services.remove_member(owner, datanet, viewer)
    assert services.run(job.pk) == "failed"
    job = TrainingJob.objects.get(pk=job.pk)
    assert job.status == "failed" and job.message.startswith("You no longer have access to “Secret Cases”")
    assert not job.points.exists()
