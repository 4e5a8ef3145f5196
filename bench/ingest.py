"""Ingest benchmark: a 100k-row JSONL through the real upload path.

Times datanets.services.start_upload → ingest() (the function the Celery task
runs for large files: parse, check every row against the schema, hash, dedupe
against the Datanet, bulk insert in one transaction) and compares it, in the
same run, with two baselines: json.loads of every line alone (the parsing
floor), and bulk_create of pre-built rows alone (the database floor).

Usage: .venv/bin/python bench/ingest.py [--rows 100000]
Uses DATABASE_URL when set, otherwise a fresh SQLite file in a temp folder.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "modelfactory.settings")
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("VAR_DIR", tempfile.mkdtemp(prefix="mf-bench-"))
os.environ.pop("REDIS_URL", None)
os.environ["DATANET_ASYNC_UPLOAD_BYTES"] = str(1 << 40)  # run ingest() here instead of in a worker


def make_file(rows: int) -> bytes:
    lines = (
        json.dumps({"instruction": f"Question number {i}: what is {i} plus {i}?", "input": f"context {i % 97}",
                    "output": f"The answer is {2 * i}. " + "Explanation. " * (i % 7)})
        for i in range(rows)
    )  # fmt: skip
    return "\n".join(lines).encode()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from datanets import services
    from datanets.models import Contribution, Datanet
    from datanets.parsing import content_hash

    call_command("migrate", verbosity=0)
    User = get_user_model()
    owner = User.objects.create_user(f"bench-{time.time_ns()}")
    datanet = Datanet.objects.create(owner=owner, name="Bench", slug=f"bench-{time.time_ns()}", licence="CC0-1.0")
    data = make_file(args.rows)
    rss_before = peak_rss_mb()

    start = time.perf_counter()
    batch = services.start_upload(owner, datanet, "bench.jsonl", data, {})
    full = time.perf_counter() - start
    assert batch.status == "succeeded" and batch.rows_added == args.rows, (batch.status, batch.message)
    rss_after = peak_rss_mb()

    start = time.perf_counter()
    parsed = [json.loads(line) for line in data.splitlines()]
    parse_floor = time.perf_counter() - start

    floor_datanet = Datanet.objects.create(owner=owner, name="Floor", slug=f"floor-{time.time_ns()}", licence="x")
    rows = [
        Contribution(datanet=floor_datanet, contributor=owner, content=p, content_hash=content_hash(p)) for p in parsed
    ]
    start = time.perf_counter()
    Contribution.objects.bulk_create(rows, batch_size=2000)
    db_floor = time.perf_counter() - start

    engine = django.db.connection.vendor
    print(f"rows: {args.rows:,} ({len(data) / 1e6:.1f} MB JSONL), database: {engine}")
    print(f"upload path (parse + check + hash + dedupe + insert): {full:6.2f} s  {args.rows / full:9,.0f} rows/s")
    print(
        f"baseline json.loads only:                             {parse_floor:6.2f} s  {args.rows / parse_floor:9,.0f} rows/s"
    )
    print(
        f"baseline bulk_create only:                            {db_floor:6.2f} s  {args.rows / db_floor:9,.0f} rows/s"
    )
    print(f"ratio upload path / (json.loads + bulk_create):       {full / (parse_floor + db_floor):6.2f}x")
    print(
        f"peak RSS: {rss_after:.0f} MB (grew {rss_after - rss_before:.0f} MB during the upload; input {len(data) / 1e6:.0f} MB)"
    )
    print("goal: >= 5,000 rows/s on the upload path:", "met" if args.rows / full >= 5000 else "NOT met")


if __name__ == "__main__":
    main()
