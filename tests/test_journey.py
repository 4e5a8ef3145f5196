"""The non-engineer's whole journey in Chromium, from a brand-new account, following only
links and buttons after the home page: sign up → create a private Datanet → upload a file
whose rows have different fields → preview → confirm → the records are trainable with no
second account → train Quick → watch the chart → chat with sources → export.
Then the same pages on a phone must not scroll sideways. Screenshots: test-artifacts/journey-*.png."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
import requests

from attribution import citations
from datanets.models import Contribution, Datanet
from tests.helpers import ARTIFACTS, PASSWORD, wait_until
from training.models import BaseModel, TrainingJob

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Rows with different fields: `input` only from row 4 on, a `source` column only in some rows.
ROWS = [
    {"instruction": f"What does the term {word} mean in our clinic?", "output": f"{word.title()} is {meaning}."}
    for word, meaning in [
        ("triage", "sorting patients by how urgent their care is"),
        ("vitals", "pulse, breathing, temperature and blood pressure"),
        ("discharge", "the moment a patient leaves the clinic with instructions"),
    ]
] + [
    {"instruction": "Summarise the note.", "input": f"Patient {i} stable, follow up in {i} weeks.",
     "output": f"Stable; see again in {i} weeks.", "source": f"note-{i}.txt"}
    for i in range(4, 16)
]  # fmt: skip


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"journey-{name}.png"), full_page=True)


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.fixture
def demo_base(serving_base):
    return BaseModel.objects.create(
        name="Tiny demo Llama", source=serving_base, architecture="llama", parameter_count=150_000,
        context_length=1024, methods=["lora"], builtin=True,
    )  # fmt: skip


def sign_up(page, live_url: str) -> None:
    page.goto(live_url + "/")
    page.get_by_role("link", name="Create an account").first.click()
    page.fill("input[name=email]", "nadia@example.org")
    page.fill("input[name=username]", "nadia")
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.locator("form button[type=submit]").last.click()
    page.wait_for_load_state()
    shot(page, "1-home")
    assert page.get_by_test_id("get-started").is_visible()


def create_datanet(page) -> Datanet:
    page.get_by_test_id("step-1").get_by_role("link").click()
    page.get_by_role("link", name="New Datanet").click()
    page.fill("input[name=name]", "Clinic words")
    page.fill("textarea[name=description]", "Plain explanations of the words we use at the clinic.")
    page.select_option("select[name=visibility]", "private")
    page.select_option("select[name=schema]", "instruction")
    shot(page, "2-new-datanet")
    page.locator("form button[type=submit]").last.click()
    page.wait_for_url("**/datanets/clinic-words/")
    return Datanet.objects.get(slug="clinic-words")


def upload(page, tmp_path) -> None:
    path = tmp_path / "clinic.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ROWS))
    page.get_by_role("link", name="Contribute").click()
    page.set_input_files("input[name=file]", str(path))
    page.get_by_role("button", name="Preview").click()
    assert f"{len(ROWS)} new records" in page.get_by_test_id("count-new").inner_text()
    shot(page, "3-preview")
    page.get_by_test_id("confirm-upload").click()
    page.get_by_test_id("upload-message").wait_for()
    shot(page, "4-stored")


def assert_every_field_kept(datanet: Datanet) -> None:
    stored = {c.source_row: c.content for c in Contribution.objects.filter(datanet=datanet)}
    assert len(stored) == len(ROWS)
    for row_number, row in enumerate(ROWS, start=1):
        content = stored[row_number]
        kept = {**content, **content.get("extra", {})}
        for field, value in row.items():
            assert kept.get(field) == value, f"row {row_number}: {field} was lost"


def train_quick(page, datanet: Datanet) -> TrainingJob:
    page.goto(page.url.split("/datanets/")[0] + f"/datanets/{datanet.slug}/")
    page.get_by_test_id("train-on-this").click()
    assert page.get_by_label("Clinic words", exact=False).is_checked()
    page.get_by_label("Quick", exact=False).check()
    shot(page, "5-train-form")
    page.get_by_test_id("start").click()
    page.wait_for_url("**/training/jobs/*/")
    page.wait_for_function("window.MFTraining && window.MFTraining.points().length >= 1", timeout=180_000)
    shot(page, "6-training")
    job = TrainingJob.objects.get(owner__username="nadia")
    wait_until(lambda: TrainingJob.objects.get(pk=job.pk).is_final, timeout=300)
    page.wait_for_function("document.getElementById('job-status').dataset.status === 'succeeded'", timeout=60_000)
    shot(page, "7-finished")
    job.refresh_from_db()
    return job


def chat_with_sources(page, datanet: Datanet) -> None:
    # The upload's records become searchable a few seconds after it is accepted (a background
    # sync); until then the sources panel says they are still being prepared. Wait as a person would.
    wait_until(lambda: not citations.still_indexing([datanet.pk]), timeout=120)
    page.get_by_test_id("chat-link").click()
    assert "demo model" in page.get_by_test_id("demo-note").inner_text()  # honest about the tiny model
    page.check("#ground")
    page.fill("#question", "What does the term triage mean in our clinic?")
    page.get_by_role("button", name="Send").click()
    first = page.locator("#cite-list li").first
    try:
        first.wait_for(timeout=180_000)
    finally:
        shot(page, "8-chat")
    assert "triage" in first.inner_text().lower()
    page.wait_for_function("!document.getElementById('send').disabled", timeout=180_000)
    shot(page, "8-chat")


def export(page, live_url: str, job: TrainingJob) -> None:
    page.go_back()
    link = page.get_by_test_id("export-link")
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    response = requests.get(live_url + link.get_attribute("href"), cookies=cookies, timeout=60)
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    names = set(zipfile.ZipFile(io.BytesIO(response.content)).namelist())
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= names


@pytest.mark.builtin_serving  # the demo base model: vLLM serves the tests' tiny base
def test_a_new_person_goes_from_sign_up_to_a_cited_answer_and_an_export(
    page, live_url, celery_worker_process, serving_worker, demo_base, tmp_path
):
    page.set_viewport_size({"width": 1280, "height": 900})
    sign_up(page, live_url)
    datanet = create_datanet(page)
    upload(page, tmp_path)
    assert_every_field_kept(datanet)
    # Trainable at once: accepted, in a version, with no second account involved.
    assert Contribution.objects.filter(datanet=datanet, status="accepted").count() == len(ROWS)
    assert Datanet.objects.get(pk=datanet.pk).current_version.size == len(ROWS)
    job = train_quick(page, datanet)
    assert job.status == "succeeded", job.message
    chat_with_sources(page, datanet)
    export(page, live_url, job)

    phone = page.context.browser.new_page(viewport={"width": 390, "height": 844})
    phone.context.add_cookies(page.context.cookies())
    for name, path in [("home", "/"), ("datanet", f"/datanets/{datanet.slug}/"), ("train", "/training/new/"),
                       ("job", f"/training/jobs/{job.pk}/"), ("chat", f"/chat/{job.model_id}/")]:  # fmt: skip
        phone.goto(live_url + path)
        phone.wait_for_load_state()
        phone.screenshot(path=str(ARTIFACTS / f"journey-phone-{name}.png"), full_page=True)
        assert no_horizontal_scroll(phone), f"{path} scrolls sideways on a phone"
    phone.close()
