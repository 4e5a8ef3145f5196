"""Starting jobs from the form and the API: validation, pinning, idempotency, access."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.training.jobs import finished_job
from training.models import TrainingJob

pytestmark = pytest.mark.django_db


def form_data(base_model, datanets, key="k1", **extra):
    data = {"name": "Glossary tutor", "base_model": base_model.pk, "datanets": [d.pk for d in datanets],
            "preset": "quick", "request_key": key, "max_steps": 8, "batch_size": 4, "max_seq_len": 128}  # fmt: skip
    data.update(extra)
    return data


def test_the_form_lists_only_datanets_the_user_may_train_on(
    client, user, base_model, glossary, make_datanet, make_user
):
    secret = make_datanet(owner=make_user("other"), slug="secret-notes", visibility="private")
    client.force_login(user)
    page = client.get("/training/new/").content.decode()
    assert "Glossary" in page and secret.name not in page and "Tiny test Llama" in page
    assert "Advanced settings" in page and "Gradient accumulation" in page


def test_starting_pins_the_datanet_version_and_a_double_submission_starts_one_job(
    client, user, base_model, glossary, monkeypatch
):
    queued = []
    monkeypatch.setattr("training.services.enqueue", lambda job, task: queued.append(job.pk))
    client.force_login(user)
    first = client.post("/training/new/", form_data(base_model, [glossary]))
    second = client.post("/training/new/", form_data(base_model, [glossary]))
    job = TrainingJob.objects.get()
    assert first["Location"] == second["Location"] == f"/training/jobs/{job.pk}/"
    pin = job.datasets.get()
    assert (pin.version.number, pin.size, pin.root) == (1, 120, glossary.current_version.root)
    assert job.config["max_steps"] == 8 and job.config["base_model"] == base_model.source
    assert job.config["schema"] == "instruction" and job.status == "queued"


@pytest.mark.parametrize(
    "extra, field, text",
    [
        ({"rank": 0}, "rank", "greater than or equal to 1"),
        ({"method": "qlora"}, "method", "QLoRA needs a CUDA GPU worker"),
        ({"max_seq_len": 4096}, "max_seq_len", "At most 1024 tokens"),
        ({"preset": "nonsense"}, "preset", "Select a valid choice"),
        ({"learning_rate": "fast"}, "learning_rate", "Enter a number"),
    ],
)
def test_invalid_values_get_field_messages_and_no_job(client, user, base_model, glossary, extra, field, text):
    client.force_login(user)
    response = client.post("/training/new/", form_data(base_model, [glossary], **extra))
    assert response.status_code == 400
    assert text in " ".join(
        response.context["form"].errors.get(field, []) + response.context["form"].non_field_errors()
    )
    assert not TrainingJob.objects.exists()


def test_a_tampered_post_for_an_unreadable_datanet_is_refused(client, user, base_model, make_datanet, make_user):
    secret = make_datanet(owner=make_user("other"), slug="secret-notes", visibility="private")
    client.force_login(user)
    response = client.post("/training/new/", form_data(base_model, [secret]))
    assert response.status_code == 400 and "valid choice" in str(response.context["form"].errors["datanets"])
    assert not TrainingJob.objects.exists()


def test_an_empty_datanet_is_refused(client, user, base_model, make_datanet):
    empty = make_datanet(owner=user, slug="empty")
    client.force_login(user)
    response = client.post("/training/new/", form_data(base_model, [empty]))
    assert response.status_code == 400 and "no accepted records" in str(response.context["form"].errors)


def test_the_api_starts_lists_details_and_cancels(user, other_user, base_model, glossary, monkeypatch):
    monkeypatch.setattr("training.services.enqueue", lambda job, task: None)
    api = APIClient()
    api.force_authenticate(user)
    body = {"base_model": base_model.pk, "datanets": ["glossary"], "preset": "quick", "config": {"max_steps": 5}}
    created = api.post("/api/v1/training/jobs/", body, format="json")
    assert created.status_code == 201, created.json()
    job_id = created.json()["id"]
    assert created.json()["datanets"][0]["root"] == glossary.current_version.root
    assert [j["id"] for j in api.get("/api/v1/training/jobs/").json()["results"]] == [job_id]
    assert api.get(f"/api/v1/training/jobs/{job_id}/").json()["metrics"] == []
    assert api.post(f"/api/v1/training/jobs/{job_id}/cancel/").json()["status"] == "cancelled"
    assert api.post(f"/api/v1/training/jobs/{job_id}/cancel/").status_code == 409
    stranger = APIClient()
    stranger.force_authenticate(other_user)
    assert stranger.get(f"/api/v1/training/jobs/{job_id}/").status_code == 404
    assert stranger.post(f"/api/v1/training/jobs/{job_id}/cancel/").status_code == 404
    assert stranger.get("/api/v1/training/jobs/").json()["results"] == []


@pytest.mark.parametrize(
    "body, status, text",
    [
        ({"base_model": 999, "datanets": ["glossary"]}, 400, "Invalid pk"),
        ({"datanets": ["glossary"]}, 400, "required"),
        ({"base_model": "BASE", "datanets": ["nope"]}, 400, "No Datanet you may train on: nope"),
        ({"base_model": "BASE", "datanets": ["glossary"], "config": {"rank": -1}}, 400, "rank"),
        ({"base_model": "BASE", "datanets": ["glossary"], "config": {"warp": 9}}, 400, "warp"),
        ({"base_model": "BASE", "datanets": ["glossary"], "config": {"method": "qlora"}}, 400, "QLoRA"),
        ({"base_model": "BASE", "datanets": ["glossary"], "config": {"rank": "x"}}, 400, "rank"),
        ({"base_model": "BASE", "datanets": ["glossary"], "config": {"packing": "yes"}}, 400, "packing"),
        # values the preset's sizing reads (passes from steps) are checked before it reads them
        ({"base_model": "BASE", "datanets": ["glossary"], "config": {"batch_size": 0}}, 400, "batch_size"),
        ({"base_model": "BASE", "datanets": ["glossary"], "config": {"grad_accum": "x"}}, 400, "grad_accum"),
        ({"base_model": "BASE", "datanets": ["glossary"], "config": {"eval_fraction": "x"}}, 400, "eval_fraction"),
        ({"base_model": "BASE", "datanets": ["glossary"], "config": {"epochs": None}}, 201, "quick"),
        (
            {"base_model": "BASE", "datanets": ["glossary"], "config": {"target_modules": "q_proj"}},
            400,
            "target_modules",
        ),
        ({"base_model": "BASE", "datanets": ["glossary"], "config": "fast"}, 400, "config"),
        ({"base_model": "BASE", "datanets": ["glossary"], "preset": "warp"}, 400, "preset"),
    ],
)
def test_bad_api_requests_get_a_4xx_and_leave_no_job(user, base_model, glossary, body, status, text):
    api = APIClient()
    api.force_authenticate(user)
    if body.get("base_model") == "BASE":
        body["base_model"] = base_model.pk
    response = api.post("/api/v1/training/jobs/", body, format="json")
    assert response.status_code == status and text in str(response.json())
    assert TrainingJob.objects.exists() == (status == 201)


def test_job_pages_are_only_for_their_owner(client, user, other_user, base_model, glossary, monkeypatch):
    monkeypatch.setattr("training.services.enqueue", lambda job, task: None)
    client.force_login(user)
    client.post("/training/new/", form_data(base_model, [glossary]))
    job = TrainingJob.objects.get()
    assert client.get(f"/training/jobs/{job.pk}/").status_code == 200
    assert client.get("/training/jobs/").status_code == 200
    client.force_login(other_user)
    for url in (f"/training/jobs/{job.pk}/", f"/training/jobs/{job.pk}/points/"):
        assert client.get(url).status_code == 404
    assert client.post(f"/training/jobs/{job.pk}/cancel/").status_code == 404
    assert "Glossary tutor" not in client.get("/training/jobs/").content.decode()
    assert "Glossary tutor" not in client.get(f"/training/jobs/compare/?jobs={job.pk}").content.decode()


def test_a_model_folder_without_weights_is_refused_before_any_job(client, user, base_model, glossary, tmp_path):
    import shutil

    from training.models import BaseModel

    folder = tmp_path / "no-weights"
    shutil.copytree(base_model.source, folder)
    (folder / "model.safetensors").unlink()
    broken = BaseModel.objects.create(name="Broken", source=str(folder), methods=["lora"], context_length=1024)
    client.force_login(user)
    response = client.post("/training/new/", form_data(broken, [glossary]))
    error = str(response.context["form"].errors["base_model"])
    assert response.status_code == 400 and "The weights of “Broken” are missing" in error
    assert str(folder) not in response.content.decode()  # the server's folder is not for the user's eyes
    assert not TrainingJob.objects.exists()


def test_the_sweep_queues_again_only_jobs_whose_worker_is_gone(user, base_model, glossary, settings, tmp_path):
    import os
    import socket
    from datetime import timedelta

    from django.utils import timezone

    from training.services import requeue_stale_jobs

    settings.TRAINING_LEASE_SECONDS = 300
    old = timezone.now() - timedelta(seconds=301)
    here = socket.gethostname()
    cases = {  # worker, heartbeat -> queued again?
        "lease expired elsewhere": ("gpu-host-2:4242", old, True),
        "alive elsewhere": ("gpu-host-2:4243", timezone.now(), False),
        "dead pid here": (f"{here}:{2**22 + 17}", timezone.now(), True),
        "alive here": (f"{here}:{os.getpid()}", timezone.now(), False),
    }
    jobs = {}
    for name, (worker, beat, _) in cases.items():
        job = finished_job(user, base_model, glossary, tmp_path, status="running")
        TrainingJob.objects.filter(pk=job.pk).update(worker=worker, heartbeat_at=beat)
        jobs[name] = job
    assert sorted(requeue_stale_jobs()) == sorted(jobs[n].pk for n, c in cases.items() if c[2])
    for name, (_, _, again) in cases.items():
        job = TrainingJob.objects.get(pk=jobs[name].pk)
        assert job.status == ("queued" if again else "running"), name
        assert ("its worker stopped; queued again" in job.log_tail) == again
    assert requeue_stale_jobs() == []  # once: a second sweep (or another worker's) finds nothing


def test_starting_jobs_has_a_rate_of_its_own(user, base_model, glossary, monkeypatch):
    from django.core.cache import cache
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr("training.services.enqueue", lambda job, task: None)
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": None, "user": None, "jobs": "1/hour"})
    cache.delete(f"throttle_jobs_{user.pk}")
    api = APIClient()
    api.force_authenticate(user)
    body = {"base_model": base_model.pk, "datanets": ["glossary"], "preset": "quick"}
    assert api.post("/api/v1/training/jobs/", body, format="json").status_code == 201
    refused = api.post("/api/v1/training/jobs/", body, format="json")
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert TrainingJob.objects.count() == 1
    assert api.get("/api/v1/training/jobs/").status_code == 200  # listing is not starting


def test_one_person_may_have_only_so_many_jobs_waiting_or_running(
    client, user, make_user, base_model, glossary, monkeypatch, settings
):
    monkeypatch.setattr("training.services.enqueue", lambda job, task: None)
    settings.TRAINING_MAX_ACTIVE_JOBS = 2
    api = APIClient()
    api.force_authenticate(user)
    body = {"base_model": base_model.pk, "datanets": ["glossary"], "preset": "quick"}
    assert [api.post("/api/v1/training/jobs/", body, format="json").status_code for _ in range(2)] == [201, 201]
    refused = api.post("/api/v1/training/jobs/", body, format="json")
    assert refused.status_code == 429 and refused["Retry-After"] == "60"
    assert "You have 2 training jobs waiting or running" in refused.json()["detail"]
    client.force_login(user)
    page = client.post("/training/new/", form_data(base_model, [glossary])).content.decode()
    assert "the most one person may have at a time (2)" in page  # the form says it too
    assert TrainingJob.objects.count() == 2
    TrainingJob.objects.filter(owner=user).update(status="succeeded")  # finished jobs do not count
    assert api.post("/api/v1/training/jobs/", body, format="json").status_code == 201
    staff = make_user("staffer", is_staff=True)
    api.force_authenticate(staff)
    from datanets.models import Membership

    Membership.objects.get_or_create(datanet=glossary, user=staff, defaults={"role": "viewer"})
    assert [api.post("/api/v1/training/jobs/", body, format="json").status_code for _ in range(3)] == [201] * 3


def test_one_job_may_train_on_only_so_many_tokens(user, base_model, glossary, monkeypatch):
    monkeypatch.setattr("training.services.enqueue", lambda job, task: None)
    api = APIClient()
    api.force_authenticate(user)
    huge = {"max_steps": 1_000_000, "batch_size": 1024, "max_seq_len": 1024}
    body = {"base_model": base_model.pk, "datanets": ["glossary"], "preset": "quick", "config": huge}
    refused = api.post("/api/v1/training/jobs/", body, format="json")
    assert refused.status_code == 400 and not TrainingJob.objects.exists()
    assert "would train on up to 1,048,576,000,000 tokens" in refused.json()["max_steps"]


def test_a_datanet_named_twice_is_trained_on_once(user, base_model, glossary, monkeypatch):
    """Found by schemathesis: the same slug twice was a 500 (a second pin of the same Datanet)."""
    monkeypatch.setattr("training.services.enqueue", lambda job, task: None)
    api = APIClient()
    api.force_authenticate(user)
    body = {"base_model": base_model.pk, "datanets": ["glossary", "glossary"], "preset": "quick"}
    created = api.post("/api/v1/training/jobs/", body, format="json")
    assert created.status_code == 201, created.content
    assert TrainingJob.objects.get().datasets.count() == 1


def test_devices_are_offered_only_where_a_host_has_several(client, user, base_model, glossary, settings):
    client.force_login(user)
    assert "processes" not in client.get("/training/new/").context["form"].fields  # one device: no choice
    settings.TRAINING_DEVICES_PER_WORKER = 2
    page = client.get("/training/new/")
    assert "training hosts have 2" in page.context["form"].fields["processes"].help_text
    response = client.post("/training/new/", form_data(base_model, [glossary], processes=3))
    assert response.status_code == 400 and not TrainingJob.objects.exists()
    assert "have 2 device(s); choose at most that many" in " ".join(response.context["form"].errors["processes"])
    assert client.post("/training/new/", form_data(base_model, [glossary], processes=2)).status_code == 302
    assert TrainingJob.objects.get().config["processes"] == 2
