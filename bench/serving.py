"""Serving benchmark: the built-in engine (continuous batching) beside vLLM, same run, same models, same
LoRA adapters (r=16 on every projection), same prompts, greedy, through the same backend interface the
serving worker uses (serving/engine/backend.py).

For each base model (a 16M- and a ~127M-parameter random Llama; --quick: the 16M one only):
- arrivals: 32 requests arriving 0.2 s apart over 10 adapters: time to first token p50/p95, total time
  p50/p95, tokens/s;
- throughput: 64 requests at once over 1, 10 and 100 adapters: generated tokens/s;
- static batches of 8 (the engine before continuous batching), for the ratio;
then, on the 16M model, through the product: the serving worker and Redis (the path the chat websocket and
`/v1` take; the websocket hop itself is not in it) against the engine alone, and adapter cold-load and
warm-swap latency (goals of an earlier issue).

vLLM runs when `make vllm` has built its environment; otherwise its rows say so and its goals are NOT met.

Usage: .venv/bin/python bench/serving.py [--quick] [--tokens 32]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.parts.serving import (  # noqa: E402
    adapter_latency,
    make_adapters,
    product_path,
    start_vllm,
    static_throughput,
)

MODELS = {"16M": {"hidden": 512, "layers": 4, "heads": 8}, "127M": {"hidden": 1024, "layers": 8, "heads": 16}}
PROMPTS = ["Explain what a LoRA adapter is in one sentence.", "What is a tokenizer?", "Define overfitting.",
           "Why does a learning rate matter?"]  # fmt: skip


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


async def one(backend, base: str, i: int, adapters: list[str], tokens: int, started: float) -> dict:
    from serving.engine import GenerationParams, Request

    k = i % len(adapters) if adapters else None
    request = Request(f"q{i}-{time.monotonic_ns()}", [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
                      f"a{k}" if adapters else None, adapters[k] if adapters else None,
                      GenerationParams(max_tokens=tokens, temperature=0))  # fmt: skip
    first, text, out = None, "", {}
    async for event in backend.generate(request, f"user{i % 4}", base):
        if event.error is not None:
            raise event.error
        if event.text and first is None:
            first = time.perf_counter() - started
        text += event.text
        if event.finish_reason:
            out = {"ttft": first if first is not None else time.perf_counter() - started,
                   "total": time.perf_counter() - started, "tokens": event.completion_tokens, "text": text}  # fmt: skip
    return out


async def arrivals(backend, base: str, adapters: list[str], n: int, gap: float, tokens: int) -> dict:
    async def later(i):
        await asyncio.sleep(i * gap)
        return await one(backend, base, i, adapters, tokens, time.perf_counter())

    start = time.perf_counter()
    results = await asyncio.gather(*(later(i) for i in range(n)))
    wall = time.perf_counter() - start
    ttft, total = [r["ttft"] * 1000 for r in results], [r["total"] * 1000 for r in results]
    return {"ttft_p50": pct(ttft, 0.5), "ttft_p95": pct(ttft, 0.95), "total_p50": pct(total, 0.5),
            "total_p95": pct(total, 0.95), "tps": sum(r["tokens"] for r in results) / wall,
            "texts": [r["text"] for r in results]}  # fmt: skip


async def burst(backend, base: str, adapters: list[str], n: int, tokens: int) -> float:
    start = time.perf_counter()
    results = await asyncio.gather(*(one(backend, base, i, adapters, tokens, start) for i in range(n)))
    return sum(r["tokens"] for r in results) / (time.perf_counter() - start)


async def measure(backend, base: str, adapters: list[str], tokens: int) -> dict:
    await backend.start()
    try:
        await burst(backend, base, adapters[:10], 16, 4)  # warm up: load, first-call costs
        await burst(backend, base, adapters, 8, 2)  # every adapter loaded once: this measures serving
        out = {"arrivals": await arrivals(backend, base, adapters[:10], 32, 0.2, tokens)}
        for n in (1, 10, 100):
            out[n] = await burst(backend, base, adapters[:n], 64, tokens)
        return out
    finally:
        await backend.close()


def run_model(name: str, shape: dict, work: Path, tokens: int) -> dict:
    from datanets.demo_data import demo_records
    from serving.engine.builtin import BuiltinBackend
    from serving.engine.vllm import VllmBackend
    from training.engine.tiny import build_tiny_model, record_texts

    base = str(build_tiny_model(work / name, record_texts("instruction", demo_records()), **shape))
    params = _params(base)
    adapters = make_adapters(base, 100, work / f"{name}-adapters")
    result = {"params": params, "base": base, "adapters": adapters}
    result["builtin"] = asyncio.run(measure(BuiltinBackend(128, 8 << 30), base, adapters, tokens))
    result["static8"] = static_throughput(base, adapters[:10], 64, 8, tokens)
    server = start_vllm(base, work / f"{name}-vllm.log")
    if server is None:
        result["vllm"] = None
    else:
        proc, url = server
        try:
            result["vllm"] = asyncio.run(measure(VllmBackend(url, 128, 8 << 30), base, adapters, tokens))
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return result


def _params(base: str) -> int:
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(base)
    h, layers, heads, kv = c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads
    per_layer = 2 * h * h + 2 * h * (h * kv // heads) + 3 * h * c.intermediate_size
    return layers * per_layer + c.vocab_size * h


def report(name: str, r: dict) -> list[str]:
    goals = []
    b, v = r["builtin"], r["vllm"]
    print(f"\n== {name} Llama ({r['params'] / 1e6:.0f}M parameters), adapters r=16 on all projections ==")
    rows = [("built-in (continuous)", b), ("vLLM", v)]
    print("32 requests 0.2 s apart over 10 adapters: TTFT p50 / p95 ms, total p50 / p95 ms, tokens/s")
    for label, x in rows:
        if x is None:
            print(f"  {label:22} not run (no vLLM environment: make vllm)")
            continue
        a = x["arrivals"]
        print(f"  {label:22} {a['ttft_p50']:7.0f} / {a['ttft_p95']:7.0f}   {a['total_p50']:7.0f} / {a['total_p95']:7.0f}"
              f"   {a['tps']:7.1f}")  # fmt: skip
    print("64 requests at once: tokens/s over 1 / 10 / 100 adapters")
    for label, x in rows:
        if x is not None:
            print(f"  {label:22} {x[1]:8.1f} / {x[10]:8.1f} / {x[100]:8.1f}")
    print(f"  {'built-in, static b8':22} {'':8}   {r['static8']:8.1f} (10 adapters; batches of 8 run to the end)")
    print(f"  continuous ÷ static batches of 8 at 10 adapters: {b[10] / r['static8']:.2f}")
    if v is not None:
        same = sum(x == y for x, y in zip(b["arrivals"]["texts"], v["arrivals"]["texts"], strict=True))
        print(f"  greedy answers identical on both backends: {same}/{len(b['arrivals']['texts'])}")
        ttft_ratio = b["arrivals"]["ttft_p50"] / v["arrivals"]["ttft_p50"]
        tps_ratio = b[10] / v[10]
        print(f"  built-in ÷ vLLM: TTFT p50 {ttft_ratio:.2f}x, throughput (10 adapters) {tps_ratio:.2f}")
    if name == "16M":
        if v is None:
            goals += ["goal: built-in TTFT p50 under arrivals <= 2x vLLM's (16M): vLLM not run, NOT met",
                      "goal: built-in throughput >= 0.8x vLLM's (16M): vLLM not run, NOT met"]  # fmt: skip
        else:
            goals.append(f"goal: built-in TTFT p50 under arrivals <= 2x vLLM's (16M): {ttft_ratio:.2f}x, "
                         f"{'met' if ttft_ratio <= 2 else 'NOT met'}")  # fmt: skip
            goals.append(f"goal: built-in throughput >= 0.8x vLLM's (16M, 10 adapters): {tps_ratio:.2f}, "
                         f"{'met' if tps_ratio >= 0.8 else 'NOT met'}")  # fmt: skip
    return goals


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="the 16M model only")
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mf-serve-"))
    results = {name: run_model(name, shape, work, args.tokens) for name, shape in MODELS.items()
               if not (args.quick and name != "16M")}  # fmt: skip
    small = results["16M"]
    product = product_path(small["base"], small["adapters"][:10], work, args.tokens)
    latency = adapter_latency(small["base"], small["adapters"])
    goals = []
    for name, r in results.items():
        goals += report(name, r)
    print("\n== through the product (16M): serving worker + Redis vs the engine alone, same requests ==")
    print(f"  first token p50: engine alone {product['alone']:.1f} ms, worker + Redis {product['product']:.1f} ms "
          f"(+{product['product'] - product['alone']:.1f} ms)")  # fmt: skip
    print(f"  cold adapter load p50 {latency['cold_p50']:.1f} ms; warm swap {latency['swap']:+.2f} ms per request")
    extra = product["product"] - product["alone"]
    goals.append(f"goal: first-token p50 through worker + Redis within 50 ms of the engine alone: +{extra:.1f} ms, "
                 f"{'met' if extra <= 50 else 'NOT met'}")  # fmt: skip
    goals.append(f"goal: warm adapter swap <= 5 ms: {latency['swap']:+.2f} ms, "
                 f"{'met' if latency['swap'] <= 5 else 'NOT met'}")  # fmt: skip
    print()
    for line in goals:
        print(line)


if __name__ == "__main__":
    main()
