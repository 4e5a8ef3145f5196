"""The non-engineer's journey through training: no dead ends after a run, plain words and
numbers, names instead of server paths, an honest demo model, a final job without an ETA."""

from __future__ import annotations

import io
import zipfile

import pytest
from rest_framework.test import APIClient

from tests.training.jobs import finished_job
from training import words
from training.models import DEMO_SUMMARY, BaseModel, MetricPoint

pytestmark = pytest.mark.django_db


def test_a_finished_job_page_leads_to_chat_export_and_compare(client, user, other_user, base_model, glossary, tmp_path):
    earlier = finished_job(user, base_model, glossary, tmp_path, name="Earlier run")
    job = finished_job(user, base_model, glossary, tmp_path)
    client.force_login(user)
    page = client.get(f"/training/jobs/{job.pk}/").content.decode()
    chat, export = f"/chat/{job.model_id}/", f"/api/v1/models/{job.model_id}/export/"
    compare = f"/training/jobs/compare/?jobs={job.pk},{earlier.pk}"
    assert f'href="{chat}"' in page and f'href="{export}"' in page and f'href="{compare}"' in page
    assert client.get(chat).status_code == 200
    download = client.get(export)
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content))).namelist()
    assert sorted(names) == ["README.md", "adapter_config.json", "adapter_model.safetensors"]
    compared = client.get(compare).content.decode()
    assert "Glossary tutor" in compared and "Earlier run" in compared
    client.force_login(other_user)
    assert client.get(export).status_code == 404
    assert client.get(chat).status_code == 404
    assert client.get(f"/training/jobs/{job.pk}/").status_code == 404


def test_a_running_job_offers_no_export_yet(client, user, base_model, glossary, tmp_path):
    job = finished_job(user, base_model, glossary, tmp_path, status="running", progress=0.5, eta_seconds=34)
    client.force_login(user)
    page = client.get(f"/training/jobs/{job.pk}/").content.decode()
    assert "/export/" not in page and "Chat with it" not in page
    assert "Step 37 · 50% done · about 35 seconds left" in page


def test_the_form_preselects_a_datanet_the_user_may_train_on(client, user, base_model, glossary, make_datanet,
                                                             make_user):  # fmt: skip
    secret = make_datanet(owner=make_user("carol"), slug="secret-notes", visibility="private")
    client.force_login(user)
    chosen = client.get("/training/new/?datanet=glossary").content.decode()
    assert f'value="{glossary.pk}" id="id_datanets_0" checked' in chosen
    for slug in (secret.slug, "no-such-datanet", "x" * 5000):
        page = client.get(f"/training/new/?datanet={slug}")
        assert page.status_code == 200
        html = page.content.decode()
        assert "checked" not in html.split('name="datanets"')[1].split(">")[0] and secret.name not in html


def test_the_jobs_list_exists_and_speaks_plainly(client, user, base_model, glossary, tmp_path):
    finished_job(user, base_model, glossary, tmp_path)
    client.force_login(user)
    page = client.get("/training/jobs/").content.decode()
    assert "Glossary tutor" in page and "Finished" in page and "2.50 (evaluation)" in page


def test_metrics_are_labelled_and_rounded_on_the_job_and_models_pages(client, user, base_model, glossary, tmp_path):
    job = finished_job(user, base_model, glossary, tmp_path)
    client.force_login(user)
    for url in (f"/training/jobs/{job.pk}/", "/models/"):
        page = client.get(url).content.decode()
        assert "Training loss" in page and "2.31" in page and "Steps" in page
        assert "2.3142" not in page and "37.0000" not in page and "train_loss" not in page


@pytest.mark.parametrize(
    "value, decimals, text",
    [(37.0, 0, "37"), (2.31415, 2, "2.31"), (0.00030001, None, "0.0003"), (2e-5, None, "0.00002"),
     (1234.4, 0, "1,234"), (float("nan"), 2, "—"), (None, 2, "—")],
)  # fmt: skip
def test_numbers_are_rounded_for_people(value, decimals, text):
    assert words.number(value, decimals) == text


def test_the_base_model_apis_name_models_without_server_paths(user, base_model, glossary, tmp_path):
    hub = BaseModel.objects.create(name="Qwen 0.5B", source="Qwen/Qwen2.5-0.5B-Instruct", methods=["lora"])
    job = finished_job(user, base_model, glossary, tmp_path)
    api = APIClient()
    api.force_authenticate(user)
    bases = api.get("/api/v1/training/base-models/").json()
    rows = {row["name"]: row for row in bases["results"]}
    assert rows["Qwen 0.5B"]["hub_id"] == "Qwen/Qwen2.5-0.5B-Instruct" and rows["Tiny test Llama"]["hub_id"] == ""
    assert rows["Tiny test Llama"]["summary"] == DEMO_SUMMARY
    models = api.get("/api/v1/models/").json()
    assert {m["base"] for m in models} == {"Tiny test Llama", "Qwen 0.5B"}
    detail = api.get(f"/api/v1/models/{job.model_id}/").json()
    jobs = api.get(f"/api/v1/training/jobs/{job.pk}/").json()
    assert detail["config"]["base_model"] == jobs["config"]["base_model"] == "Tiny test Llama"
    for body in (bases, models, detail, jobs):
        assert base_model.source not in str(body) and str(tmp_path) not in str(body)
    assert hub.source in str(models)


def test_the_demo_model_is_labelled_where_it_is_chosen_and_shown(client, user, base_model, glossary, tmp_path):
    job = finished_job(user, base_model, glossary, tmp_path)
    client.force_login(user)
    form = client.get("/training/new/").content.decode()
    assert "Tiny test Llama — small demo model" in form and DEMO_SUMMARY in form
    for url in (f"/training/jobs/{job.pk}/", "/models/"):
        page = client.get(url).content.decode()
        assert "badge-demo" in page and DEMO_SUMMARY in page


@pytest.mark.parametrize("cuda, device_words", [(False, "processor (CPU)"), (True, "graphics card (GPU)")])
def test_the_estimate_names_the_device_and_rounds(client, settings, user, base_model, glossary, cuda, device_words):
    settings.TRAINING_CUDA_WORKERS = cuda
    client.force_login(user)
    data = {"base_model": base_model.pk, "datanets": [glossary.pk], "preset": "quick", "request_key": "k"}
    page = client.post("/training/estimate/", data).content.decode()
    assert device_words in page and "GPU memory" not in page
    assert "using less than 0.1 GB of memory" in page and "under a minute for 120 records" in page
    # Quick gives 120 records (15 steps a pass) 6 passes, so that the run has its 90 steps
    assert "6 passes over the data, about 90 training steps: small Datanets get more passes" in page


def test_a_cancelled_job_shows_where_it_stopped_and_no_eta(client, user, base_model, glossary, tmp_path):
    job = finished_job(user, base_model, glossary, tmp_path, status="running", progress=0.5, eta_seconds=34,
                       final_metrics={})  # fmt: skip
    MetricPoint.objects.create(job=job, step=37, train_loss=2.3, progress=0.5, eta_seconds=34)
    client.force_login(user)
    first = client.post(f"/training/jobs/{job.pk}/cancel/", follow=True).content.decode()
    assert "Cancel requested" in first
    job.refresh_from_db()
    job.finish("cancelled", "Cancelled at step 37.")
    page = client.get(f"/training/jobs/{job.pk}/").content.decode()
    assert "Stopped at step 37 (cancelled)." in page and " left" not in page and "ETA" not in page
    assert "Cancel training" not in page and "Chat with it" not in page
    again = client.post(f"/training/jobs/{job.pk}/cancel/", follow=True)
    assert again.status_code == 200
    assert "This job has already ended (cancelled): there is nothing to cancel." in again.content.decode()
    api = APIClient()
    api.force_authenticate(user)
    refused = api.post(f"/api/v1/training/jobs/{job.pk}/cancel/")
    assert refused.status_code == 409 and "already ended" in str(refused.json())


def test_the_cancel_button_asks_for_confirmation(client, user, base_model, glossary, tmp_path):
    job = finished_job(user, base_model, glossary, tmp_path, status="queued", progress=0, final_metrics={})
    client.force_login(user)
    page = client.get(f"/training/jobs/{job.pk}/").content.decode()
    assert "onsubmit=\"return confirm('Cancel this training job?" in page


def test_the_page_refreshing_itself_keeps_the_flash_for_the_next_page(client, user, base_model, glossary, tmp_path):
    """A cancel ends a queued job at once; the open page hears "cancelled" over its websocket and
    refetches its summary, sometimes before the browser follows the cancel's redirect. That
    refetch must leave "Cancel requested" for the page the redirect shows."""
    job = finished_job(user, base_model, glossary, tmp_path, status="queued", progress=0, final_metrics={})
    client.force_login(user)
    client.post(f"/training/jobs/{job.pk}/cancel/")  # not followed yet
    refetch = client.get(f"/training/jobs/{job.pk}/", headers={"X-Requested-With": "fetch"})
    assert refetch.status_code == 200
    shown = client.get(f"/training/jobs/{job.pk}/").content.decode()
    assert "Cancel requested" in shown
