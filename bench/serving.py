"""Serving benchmark: many adapters on one resident base model, same run.

On the tiny base (or --base FOLDER) with 1, 10 and 100 LoRA adapters (r=16 on
the attention and MLP projections):
- throughput (generated tokens/s) with requests spread over N adapters in mixed
  batches, divided by throughput with one adapter (goal >= 0.8 at 100);
- cold-load latency of an adapter against its bytes / measured read bandwidth;
- warm-swap latency: switching a request to another resident adapter (goal <= 5 ms);
- the naive way for comparison: a fresh PeftModel.from_pretrained per request.

Usage: .venv/bin/python bench/serving.py [--base FOLDER] [--requests 64] [--batch 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


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


def throughput(engine, paths: list[str], requests: int, batch: int, tokens: int) -> float:
    from serving.engine import GenerationParams, Request

    params = GenerationParams(max_tokens=tokens, temperature=0)
    msgs = [{"role": "user", "content": "Explain what a LoRA adapter is in one sentence."}]
    out, start = 0, time.perf_counter()
    for i in range(0, requests, batch):
        reqs = [
            Request(f"r{j}", msgs, f"a{j % len(paths)}", paths[j % len(paths)], params) for j in range(i, i + batch)
        ]
        for event in engine.stream(reqs):
            if event.finish_reason:
                out += event.completion_tokens
    return out / (time.perf_counter() - start)


def read_bandwidth(paths: list[str]) -> float:
    """Bytes per second reading adapter files (page cache dropped is not possible here)."""
    total, start = 0, time.perf_counter()
    for p in paths:
        total += len((Path(p) / "adapter_model.safetensors").read_bytes())
    return total / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=16)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mf-serve-"))
    base = args.base
    if not base:
        from datanets.demo_data import demo_records
        from training.engine.tiny import build_tiny_model, record_texts

        base = str(build_tiny_model(work / "base", record_texts("instruction", demo_records()), hidden=256, layers=4,
                                    heads=8))  # fmt: skip
    from serving.engine import GenerationParams, Request, ServingEngine

    paths = make_adapters(base, 100, work)
    results = {}
    for n in (1, 10, 100):
        engine = ServingEngine(base, max_adapters=128, max_adapter_bytes=8 << 30)
        for i in range(n):  # load first: this measures serving, not loading
            engine.cache.ensure(f"a{i}", paths[i])
        throughput(engine, paths[:n], args.batch, args.batch, 2)  # warm up
        results[n] = throughput(engine, paths[:n], args.requests, args.batch, args.tokens)

    # Cold loads: a fresh engine with 20 resident adapters, then 20 more loaded one by one.
    engine = ServingEngine(base, max_adapters=128, max_adapter_bytes=8 << 30)
    for i in range(20):
        engine.cache.ensure(f"a{i}", paths[i])
    cold = []
    for i in range(20, 40):
        start = time.perf_counter()
        engine.cache.ensure(f"a{i}", paths[i])
        cold.append((time.perf_counter() - start) * 1000)
    nbytes = (Path(paths[0]) / "adapter_model.safetensors").stat().st_size
    bandwidth = read_bandwidth(paths[40:60])
    floor_ms = nbytes / bandwidth * 1000

    # Warm swap: one request, alternating between two resident adapters, versus the same adapter.
    msgs = [{"role": "user", "content": "Hi"}]
    one = GenerationParams(max_tokens=1, temperature=0)

    def timed(names: list[str]) -> list[float]:
        out = []
        for name in names:
            start = time.perf_counter()
            list(engine.stream([Request("w", msgs, name, paths[int(name[1:])], one)]))
            out.append((time.perf_counter() - start) * 1000)
        return out

    same = timed(["a1"] * 40)
    swap = timed(["a1", "a2"] * 20)
    warm_swap = statistics.median(swap) - statistics.median(same)

    # The naive way: a fresh PeftModel per request on a resident base.
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    naive_base = AutoModelForCausalLM.from_pretrained(base).eval()
    tok = engine.tokenizer
    naive = []
    for i in range(10):
        start = time.perf_counter()
        model = PeftModel.from_pretrained(naive_base, paths[i])
        ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        model.generate(**ids, max_new_tokens=1, do_sample=False)
        naive.append((time.perf_counter() - start) * 1000)
        naive_base = model.unload()  # give the base back without the adapter

    print(f"base: {base}; adapters r=16 on all projections, {nbytes / 1e6:.2f} MB each; batch {args.batch}, "
          f"{args.requests} requests x {args.tokens} tokens")  # fmt: skip
    for n in (1, 10, 100):
        print(
            f"throughput over {n:3d} adapter(s): {results[n]:8.1f} tokens/s  ratio to 1 adapter: {results[n] / results[1]:.2f}"
        )
    print(f"goal: ratio >= 0.8 at 100 adapters: {'met' if results[100] / results[1] >= 0.8 else 'NOT met'}")
    print(f"cold load: p50 {statistics.median(cold):.1f} ms, p95 {sorted(cold)[int(len(cold) * 0.95) - 1]:.1f} ms "
          f"(20 already resident); read floor bytes/bandwidth = {floor_ms:.2f} ms at {bandwidth / 1e9:.2f} GB/s")  # fmt: skip
    print(f"warm swap (alternate two resident adapters vs repeat one): {warm_swap:+.2f} ms per request "
          f"(1-token request p50 {statistics.median(same):.1f} ms); goal <= 5 ms")  # fmt: skip
    print(f"naive fresh PeftModel per request: p50 {statistics.median(naive):.1f} ms "
          f"vs engine warm p50 {statistics.median(same):.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
