"""The training pages in real Chromium: a phone fits them, a finished job leads on, a job that
ends while the page is open changes to its final words, Cancel asks first, no ETA once it is over."""

from __future__ import annotations

import io
import zipfile
from concurrent.futures import ThreadPoolExecutor

import pytest

from core import live
from tests.helpers import ARTIFACTS, sign_in
from tests.training.jobs import finished_job
from training import services
from training.models import MetricPoint, TrainingJob

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
OVERFLOW = "document.documentElement.scrollWidth - document.documentElement.clientWidth"


def running_job(user, base_model, glossary, tmp_path) -> TrainingJob:
    log = "07:40:01 120 training and 0 eval examples; 0 dropped\n07:40:01 started (attempt 1)"
    job = finished_job(user, base_model, glossary, tmp_path, status="running", progress=0.25, eta_seconds=95,
                       last_step=37, final_metrics={}, adapter_dir="", log_tail=log)  # fmt: skip
    for step in range(1, 38):
        MetricPoint.objects.create(job=job, step=step, train_loss=4 - step / 20, learning_rate=3e-4 * min(1, step / 10),
                                   tokens_per_second=1234.5, progress=step / 148, eta_seconds=95)  # fmt: skip
    return job


def open_job(page, live_url, job) -> None:
    page.goto(f"{live_url}/training/jobs/{job.pk}/")
    page.wait_for_function("document.getElementById('training-dashboard').dataset.synced === 'yes'")


def test_the_form_and_a_job_page_fit_a_phone(page, live_url, user, base_model, glossary, tmp_path):
    job = running_job(user, base_model, glossary, tmp_path)
    sign_in(page, live_url, "alice")
    page.set_viewport_size(PHONE)
    page.goto(f"{live_url}/training/new/?datanet=glossary")
    assert page.get_by_label("Glossary").is_checked()
    estimate = page.locator("#estimate")
    estimate.locator("strong").wait_for()  # asked for at once for the preselected Datanet
    assert "for 120 records" in estimate.inner_text() and "processor (CPU)" in estimate.inner_text()
    limits = page.get_by_test_id("training-limits")  # the person's fair share, before they press Start
    assert limits.is_visible() and "of training per 24 hours (used" in limits.inner_text()
    page.screenshot(path=str(ARTIFACTS / "training-form-phone.png"), full_page=True)
    assert page.evaluate(OVERFLOW) <= 0
    open_job(page, live_url, job)
    state = page.get_by_test_id("job-state").inner_text()
    assert state.startswith("Step 37 · 25% done · about 2 minutes left"), state
    assert page.locator("#job-throughput").inner_text() == "Tokens per second 1,235"
    page.screenshot(path=str(ARTIFACTS / "job-phone.png"), full_page=True)
    assert page.evaluate(OVERFLOW) <= 0


def test_a_finished_job_leads_to_chat_export_and_compare(page, live_url, user, base_model, glossary, tmp_path):
    job = finished_job(user, base_model, glossary, tmp_path, log_tail="07:40:01 started (attempt 1)")
    for step in range(1, 38):
        MetricPoint.objects.create(job=job, step=step, train_loss=4 - step / 20, learning_rate=3e-4 * min(1, step / 10),
                                   eval_loss=2.5 if step % 10 == 0 else None)  # fmt: skip
    sign_in(page, live_url, "alice")
    page.set_viewport_size(DESKTOP)
    open_job(page, live_url, job)
    assert page.get_by_test_id("job-status").inner_text() == "Finished"
    assert page.get_by_test_id("job-state").inner_text() == "Finished after 37 steps."
    page.screenshot(path=str(ARTIFACTS / "job-finished.png"), full_page=True)
    with page.expect_download() as download:
        page.get_by_test_id("export-link").click()
    archive = zipfile.ZipFile(io.BytesIO(open(download.value.path(), "rb").read()))
    assert "adapter_model.safetensors" in archive.namelist()
    page.get_by_test_id("compare-link").click()
    page.wait_for_url("**/training/jobs/compare/**")
    assert page.get_by_role("heading", name="Compare runs").is_visible()
    page.go_back()
    page.get_by_test_id("chat-link").click()
    page.wait_for_url(f"**/chat/{job.model_id}/")
    page.set_viewport_size(PHONE)
    open_job(page, live_url, job)
    assert page.evaluate(OVERFLOW) <= 0


def test_a_job_ending_while_open_shows_its_final_words_and_next_steps(
    page, live_url, user, base_model, glossary, tmp_path
):
    job = running_job(user, base_model, glossary, tmp_path)
    sign_in(page, live_url, "alice")
    open_job(page, live_url, job)
    adapter = finished_job(user, base_model, glossary, tmp_path).adapter_dir
    TrainingJob.objects.filter(pk=job.pk).update(adapter_dir=adapter, progress=1.0, eta_seconds=0, last_step=148)
    job.finish("succeeded", "Finished: 148 steps.")
    event = {"type": "status", "status": "succeeded", "message": "Finished: 148 steps."}
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API owns this thread's event loop
        pool.submit(live.send, services.job_group(job.pk), event).result()
    page.get_by_test_id("chat-link").wait_for()
    assert page.get_by_test_id("job-state").inner_text() == "Finished after 148 steps."
    assert page.locator("#job-throughput").count() == 1 and "left" not in page.locator("#job-summary").inner_text()


def test_cancel_asks_first_then_the_page_shows_where_it_stopped_without_an_eta(
    page, live_url, user, base_model, glossary, tmp_path
):
    job = running_job(user, base_model, glossary, tmp_path)
    sign_in(page, live_url, "alice")
    open_job(page, live_url, job)
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_test_id("cancel").click()
    page.wait_for_timeout(300)
    assert not TrainingJob.objects.get(pk=job.pk).cancel_requested
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id("cancel").click()
    page.wait_for_url(f"**/training/jobs/{job.pk}/")
    assert TrainingJob.objects.get(pk=job.pk).cancel_requested
    flash, badge = page.locator(".flash").first, page.get_by_test_id("job-status")
    assert "Cancel requested" in flash.inner_text() and badge.is_visible()
    box, over = badge.bounding_box(), flash.bounding_box()
    assert box["y"] >= over["y"] + over["height"] or box["x"] >= over["x"] + over["width"]  # not covered
    page.screenshot(path=str(ARTIFACTS / "job-cancel-requested.png"), full_page=True)
    TrainingJob.objects.get(pk=job.pk).finish("cancelled", "Cancelled at step 37.")
    open_job(page, live_url, job)  # the history still holds points with an ETA in them
    assert page.get_by_test_id("job-state").inner_text() == "Stopped at step 37 (cancelled)."
    assert "left" not in page.locator("#job-summary").inner_text() and "ETA" not in page.content()
    assert page.get_by_test_id("job-status").inner_text() == "Cancelled" and page.get_by_test_id("cancel").count() == 0
    page.screenshot(path=str(ARTIFACTS / "job-cancelled.png"), full_page=True)


def test_the_advanced_settings_show_the_new_knobs_and_no_devices_choice_on_one_device_hosts(
    page, live_url, user, base_model, glossary
):
    sign_in(page, live_url, "alice")
    page.set_viewport_size(PHONE)
    page.goto(f"{live_url}/training/new/?datanet=glossary")
    page.get_by_text("Advanced settings").click()
    assert page.get_by_label("Answer-only output layer").is_visible()
    assert page.get_by_label("Devices").count() == 0  # one device per host (the default): nothing to choose
    page.screenshot(path=str(ARTIFACTS / "training-advanced-phone.png"), full_page=True)
    assert page.evaluate(OVERFLOW) <= 0


def test_devices_and_hosts_on_a_phone_where_jobs_may_span_them(page, server_pool, user, base_model, glossary):
    live_url = server_pool.get(TRAINING_DEVICES_PER_WORKER="2", TRAINING_MAX_HOSTS="4")
    sign_in(page, live_url, "alice")
    page.set_viewport_size(PHONE)
    page.goto(f"{live_url}/training/new/?datanet=glossary")
    page.get_by_text("Advanced settings").click()
    hosts = page.get_by_label("Hosts")
    assert hosts.is_visible() and page.get_by_label("Devices").is_visible()
    assert "trains on at most 4" in page.locator("form.train-form").inner_text()
    hosts.fill("5")  # more than the installation has: refused in words next to the field
    page.get_by_role("button", name="Start training").click()
    error = page.get_by_text("at most 4 host(s) at once")
    error.wait_for()
    assert not TrainingJob.objects.exists()
    page.get_by_label("Hosts").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "training-form-hosts-phone.png"), full_page=True)
    assert page.evaluate(OVERFLOW) <= 0
