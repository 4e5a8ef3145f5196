"""Fair share for uploads: bytes and records per person per rolling day (429 with Retry-After and a
sentence; nothing stored past the limit; staff raise it per person), and a worker's parsing memory is
bounded: a file that needs more fails that upload with a message and the worker goes on."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from accounts.models import QuotaOverride
from core.jobs import JobStatus
from datanets.models import Contribution, UploadBatch
from tests.factories import alpaca, jsonl
from tests.helpers import api_client as api
from tests.helpers import wait_until


def send(user, datanet, rows: list[dict]):
    f = io.BytesIO(jsonl(rows))
    f.name = "rows.jsonl"
    return api(user).post(f"/api/v1/datanets/{datanet.slug}/uploads/", {"file": f}, format="multipart")


@pytest.mark.django_db
def test_bytes_per_day(user, make_datanet, settings):
    datanet = make_datanet(owner=user)
    size = len(jsonl(alpaca(20)))
    settings.UPLOAD_BYTES_PER_DAY = size * 2 - 1
    assert send(user, datanet, alpaca(20)).status_code == 201
    refused = send(user, datanet, alpaca(20, start=100))
    assert refused.status_code == 429 and int(refused["Retry-After"]) == pytest.approx(24 * 3600, abs=10)
    detail = refused.json()["detail"]
    assert f"You have uploaded {size:,} bytes in the last 24 hours" in detail and "in about 24 hours" in detail
    assert UploadBatch.objects.count() == 1 and Contribution.objects.count() == 20  # nothing kept
    QuotaOverride.objects.create(user=user, name="UPLOAD_BYTES_PER_DAY", value=10 * size)
    assert send(user, datanet, alpaca(20, start=100)).status_code == 201


@pytest.mark.django_db
def test_records_per_day(user, make_datanet, settings):
    datanet = make_datanet(owner=user)
    settings.UPLOAD_ROWS_PER_DAY = 5
    assert send(user, datanet, alpaca(3)).json()["rows_added"] == 3
    over = send(user, datanet, alpaca(3, start=10))  # 3 new records, 2 left
    assert over.status_code == 429 and int(over["Retry-After"]) > 3600
    assert "This file adds 3 records; you may add 2 more today" in over.json()["detail"]
    assert Contribution.objects.count() == 3  # all or nothing
    failed = UploadBatch.objects.order_by("-pk").first()
    assert failed.status == JobStatus.FAILED and "Nothing was stored" in failed.message  # in the upload history
    assert send(user, datanet, alpaca(2, start=10) + alpaca(3)).json()["rows_added"] == 2  # duplicates are free
    refused = send(user, datanet, alpaca(1, start=50))
    assert refused.status_code == 429 and UploadBatch.objects.count() == 3  # refused before the file is kept


@pytest.mark.django_db(transaction=True)
def test_a_worker_that_parses_a_file_needing_too_much_memory_fails_that_upload_only(extra_worker, make_datanet, user):
    """A real Celery worker with DATANET_PARSE_MEMORY_MB=16, on a queue of its own."""
    from modelfactory.celery import app

    worker = extra_worker("bounded", queues="bounded-parse", DATANET_PARSE_MEMORY_MB="16")
    datanet = make_datanet(owner=user)
    folder = Path(django_settings.MEDIA_ROOT) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)

    def queued(rows: int) -> UploadBatch:
        path = folder / f"{uuid.uuid4().hex}.upload"
        path.write_bytes(jsonl(alpaca(rows)))  # 30,000 rows: ~2 MB of JSON, far more once read
        batch = UploadBatch.objects.create(datanet=datanet, uploader=user, filename="rows.jsonl",
                                           size_bytes=path.stat().st_size, stored_file=str(path))  # fmt: skip
        app.send_task("datanets.ingest_upload", args=[batch.pk], queue="bounded-parse")
        wait_until(lambda: UploadBatch.objects.get(pk=batch.pk).is_final, timeout=60)
        return UploadBatch.objects.get(pk=batch.pk)

    big = queued(30_000)
    assert big.status == JobStatus.FAILED, big.message
    assert "needed more than 16 MB of memory" in big.message and "Split it into smaller files" in big.message
    assert not Contribution.objects.exists()
    small = queued(50)  # the same worker process goes on
    assert small.status == JobStatus.SUCCEEDED and small.rows_added == 50, small.message
    assert worker.proc.poll() is None
