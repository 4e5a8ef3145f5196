"""Schema truth: schemathesis runs over the whole REST API (/api/schema/), job creation included, against
a real daphne, database, Redis and Celery worker, as a signed-in user with an API key, and its default
checks pass: no 5xx, every status code and response body as documented, schema-valid requests accepted
and schema-violating ones refused. Its report is written to test-artifacts/schemathesis/."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from accounts.models import QuotaOverride
from accounts.services import create_api_key
from core.jobs import FINAL_STATUSES
from datanets.demo_data import demo_records
from tests.helpers import ARTIFACTS, BASE_DIR, wait_until
from training.models import BaseModel, TrainingJob

pytestmark = pytest.mark.django_db(transaction=True)
MAX_EXAMPLES = os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "8")
SEED = os.environ.get("SCHEMATHESIS_SEED", "1")
CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.fixture
def world(user, make_datanet, accepted, serving_base):
    """What the API can be asked about: a Datanet with records, a base model to train, small limits so that
    fuzzed training jobs stay small (a refusal is a documented 400/429, not a long run)."""
    datanet = make_datanet(owner=user, slug="glossary")
    accepted(datanet, demo_records()[:40])
    base = BaseModel.objects.create(name="Tiny", source=serving_base, architecture="llama", parameter_count=150_000,
                             context_length=1024, methods=["lora", "dora"], builtin=True)  # fmt: skip
    QuotaOverride.objects.create(user=user, name="TRAINING_MAX_JOB_TOKENS", value=200_000)
    QuotaOverride.objects.create(user=user, name="TRAINING_MAX_ACTIVE_JOBS", value=2)
    _, key = create_api_key(user, "schemathesis")
    return key, base.pk, datanet.slug


def config_for(out: Path, base_model: int, slug: str) -> Path:
    """The checked-in config, plus what exists in this database: half of the generated slugs and base
    model ids name the real ones, so requests reach past "not found" (training jobs get created and run)."""
    extra = f"""
[dictionaries.slugs]
values = ["{slug}"]

[dictionaries.base-models]
values = [{base_model}]

[parameters]
"path.slug" = {{ dictionary = "slugs", probability = 0.5 }}
"body.datanets[*]" = {{ dictionary = "slugs", probability = 0.5 }}
"body.base_model" = {{ dictionary = "base-models", probability = 0.5 }}
"""
    path = out / "schemathesis.toml"
    path.write_text(CONFIG.read_text() + extra)
    return path


def test_the_whole_api_keeps_to_its_schema(live_url, celery_worker_process, world, user):
    key, base_model, slug = world
    out = ARTIFACTS / "schemathesis"
    out.mkdir(parents=True, exist_ok=True)
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file", str(config_for(out, base_model, slug)), "run", f"{live_url}/api/schema/",
        "--header", f"Authorization: Bearer {key}", "--max-examples", MAX_EXAMPLES, "--seed", SEED,
        "--workers", "1", "--report", "junit", "--report-dir", str(out), "--no-color",
        "--generation-database", "none", "--request-timeout", "30",
    ]  # fmt: skip
    try:
        run = subprocess.run(command, cwd=BASE_DIR, capture_output=True, text=True, timeout=900)
    finally:
        for job in TrainingJob.objects.exclude(status__in=FINAL_STATUSES):
            job.request_cancel()
        wait_until(lambda: not TrainingJob.objects.exclude(status__in=FINAL_STATUSES).exists(), timeout=120)
    (out / "output.txt").write_text(run.stdout + run.stderr)
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-3000:]
    assert TrainingJob.objects.filter(owner=user).exists()  # job creation was reached, not only refused
