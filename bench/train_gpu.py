"""Training on a CUDA GPU (issue 15, its GPU part): a ~1B random-init Llama in bf16 (Llama 3.2 1B's
shape: hidden 2048, 16 layers, 32 heads, 8 KV heads, MLP 8192, 128,256-token vocabulary, tied output
layer), LoRA r=16/alpha 32 on all projections, the engine (run_finetune, its defaults) against TRL's
SFTTrainer with padding_free=True, each with LoRA over the bf16 base and QLoRA over an nf4 base. Both
without gradient checkpointing (a 1B model fits), so model FLOPs are 4N a token (forward 2N, backward
through the activations 2N; no weight gradients for the frozen base; attention's own FLOPs left out).

Per side and shape: steady tokens/s (non-pad tokens, after the first quarter of the steps), MFU against
the card's dense bf16 peak (its spec sheet's, and the one an 8192^3 bf16 product reaches here), peak GPU
memory (torch's allocator: allocated and reserved). TRL attends with flash-attention 2 where the
`flash_attn` package is installed, else with sdpa and the block mask transformers builds from the packed
position ids (printed); the engine picks its own path the same way (training/engine/attention.py).
Each side runs in its own process, so its peak memory is its own. One run each: the machine is lent for
minutes, so the figures are single runs, not medians.

Django-free, like the engines: it runs on a bare GPU machine with torch, transformers and peft, plus
bitsandbytes, trl and datasets carried as wheels (bench/gpu_wheels.sh lists them).

Usage: python bench/train_gpu.py [--smoke]
  --smoke: a tiny model and a few steps on whatever device is here (QLoRA is skipped without CUDA), to
  check the script before a GPU's minutes are spent on it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

SPEC_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}  # dense, FLOP/s
SIZES = {  # hidden, layers, heads, KV heads, MLP, vocabulary
    "1b": (2048, 16, 32, 8, 8192, 128256),
    "smoke": (64, 2, 2, 1, 256, 2048),
}
SHAPES = {  # name: (rows, batch, max_seq_len, steps)
    "skewed, batch 8": ("skewed", 8, 512, 40),
    "8 x 1024 tokens": ("long", 8, 1024, 20),
}
SIDES = ("engine_lora", "trl_lora", "engine_qlora", "trl_qlora")
FLOPS_PER_PARAM = 4  # per token, without checkpointing (6 with it)


def build_model(folder: Path, size: str) -> int:
    """A random-init Llama of `size` in bf16 with a tokenizer trained on the bench's rows; its parameter count."""
    import torch
    from transformers import LlamaForCausalLM

    from bench.train_throughput import dataset, long_dataset
    from training.engine.tiny import llama_config, record_texts, save_model, train_tokenizer

    hidden, layers, heads, kv_heads, mlp, vocab = SIZES[size]
    tokenizer = train_tokenizer(record_texts("instruction", dataset() + long_dataset()), 2048)
    config = llama_config(tokenizer, hidden=hidden, layers=layers, heads=heads, context=4096, intermediate=mlp)
    config.num_key_value_heads, config.vocab_size = kv_heads, vocab  # ids past the tokenizer's: a real head's size
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.bfloat16 if device == "cuda" else torch.float32)
    save_model(model, tokenizer, folder)
    return sum(p.numel() for p in model.parameters())  # the tied output layer counted once


def child(side: str, folder: str, shape: str, steps: int) -> dict:
    import torch

    from bench.train_throughput import dataset, long_dataset

    rows_kind, batch, max_len, _ = SHAPES[shape]
    rows = dataset() if rows_kind == "skewed" else long_dataset()
    torch.manual_seed(0)
    stack, _, method = side.partition("_")
    points: list[tuple[float, int]] = []  # (time, tokens so far) at each step's end
    if stack == "engine":
        loss = _engine(folder, rows, steps, batch, max_len, method, points)
    else:
        loss = _trl(folder, rows, steps, batch, max_len, method, points)
    out = {"loss": loss, **_steady(points)}
    if torch.cuda.is_available():
        out.update(
            peak_mb=torch.cuda.max_memory_allocated() / 2**20, reserved_mb=torch.cuda.max_memory_reserved() / 2**20
        )
    else:
        import resource

        out.update(peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, reserved_mb=0.0)
    return out


def _engine(folder, rows, steps, batch, max_len, method, points) -> float:
    from training.engine import FinetuneConfig, run_finetune

    cfg = FinetuneConfig(base_model=folder, method=method, max_steps=steps, batch_size=batch, max_seq_len=max_len,
                         rank=16, alpha=32, dropout=0.05, save_steps=0, eval_fraction=0, logging_steps=1,
                         warmup_ratio=0, gradient_checkpointing=False)  # fmt: skip
    losses = []

    def progress(p: dict) -> None:
        if p.get("train_loss") is not None:
            points.append((time.perf_counter(), p["tokens"]))
            losses.append(p["train_loss"])

    run_finetune(cfg, rows, tempfile.mkdtemp(), on_progress=progress)
    return sum(losses) / len(losses)


def _trl(folder, rows, steps, batch, max_len, method, points) -> float:
    import importlib.util

    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from bench.parts.training import TARGETS, completion_dataset

    cuda = torch.cuda.is_available()
    attn = "flash_attention_2" if cuda and importlib.util.find_spec("flash_attn") else "sdpa"
    kwargs: dict = {"attn_implementation": attn, "dtype": torch.bfloat16 if cuda else torch.float32}
    if method == "qlora":
        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                           bnb_4bit_use_double_quant=True,
                                                           bnb_4bit_compute_dtype=torch.bfloat16)  # fmt: skip
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    model.config.use_cache = False
    data = completion_dataset(tok, rows, max_len)
    args = SFTConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=batch, max_steps=steps,
                     learning_rate=2e-4, lr_scheduler_type="cosine", report_to="none", save_strategy="no",
                     logging_steps=1, use_cpu=not cuda, disable_tqdm=True, log_level="warning", padding_free=True,
                     max_length=None, completion_only_loss=True, bf16=cuda, gradient_checkpointing=False)  # fmt: skip
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, task_type="CAUSAL_LM", target_modules=TARGETS)
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok, peft_config=lora)
    counts: list[int] = []  # tokens of each batch made (the loader makes one ahead of the step)
    collate = trainer.data_collator

    def counting(batch_rows):
        out = collate(batch_rows)
        counts.append(int(out["input_ids"].numel()))  # padding-free: one row, no pad
        return out

    class Steps(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if cuda:
                torch.cuda.synchronize()
            points.append((time.perf_counter(), sum(counts[: state.global_step])))

    trainer.data_collator = counting
    trainer.add_callback(Steps())
    print(f"TRL attention: {attn}", file=sys.stderr)
    return trainer.train().training_loss


def _steady(points: list[tuple[float, int]]) -> dict:
    """Tokens/s after the first quarter of the steps (warm-up, kernel choice), and over them all."""
    warm = max(2, len(points) // 4) - 1
    (t0, n0), (t1, n1) = points[warm], points[-1]
    return {"steady_tokens_per_second": (n1 - n0) / (t1 - t0), "steps": len(points), "tokens": n1}


def spawn(side: str, folder: Path, shape: str, steps: int) -> dict:
    cmd = [sys.executable, __file__, "--side", side, "--model", str(folder), "--shape", shape, "--steps", str(steps)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}",
                "log": out.stderr[-2000:]}  # fmt: skip
    notes = [line for line in out.stderr.splitlines() if line.startswith("TRL attention")]
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "notes": notes}


def peak_flops() -> tuple[str, float | None, float | None]:
    """The card's name, its spec sheet's dense bf16 FLOP/s, and what an 8192^3 bf16 product reaches here."""
    import torch

    if not torch.cuda.is_available():
        return "CPU", None, None
    name = torch.cuda.get_device_name()
    spec = next((v for k, v in SPEC_BF16.items() if k in name), None)
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ a
    torch.cuda.synchronize()
    start, reps = time.perf_counter(), 10
    for _ in range(reps):
        a @ a
    torch.cuda.synchronize()
    return name, spec, reps * 2 * 8192**3 / (time.perf_counter() - start)


def report(results: dict, params: int, card: tuple) -> None:
    name, spec, measured = card
    print(f"\ncard: {name}; spec dense bf16 {spec / 1e12 if spec else 0:.0f} TFLOP/s; an 8192^3 bf16 product here: "
          f"{measured / 1e12 if measured else 0:.0f} TFLOP/s; model: {params / 1e6:,.1f}M parameters, "
          f"{FLOPS_PER_PARAM}N FLOPs a token")  # fmt: skip
    print(f"{'shape':<18} {'side':<13} {'tokens/s':>10} {'MFU spec':>9} {'MFU meas':>9} {'peak MB':>9} {'reserved':>9} "
          f"{'loss':>7}")  # fmt: skip
    for (shape, side), r in results.items():
        if "error" in r:
            print(f"{shape:<18} {side:<13} failed: {r['error']}")
            continue
        flops = r["steady_tokens_per_second"] * FLOPS_PER_PARAM * params
        mfu = [f"{100 * flops / p:.1f}%" if p else "-" for p in (spec, measured)]
        print(f"{shape:<18} {side:<13} {r['steady_tokens_per_second']:>10,.0f} {mfu[0]:>9} {mfu[1]:>9} "
              f"{r['peak_mb']:>9,.0f} {r['reserved_mb']:>9,.0f} {r['loss']:>7.3f} {' '.join(r['notes'])}")  # fmt: skip
    for method in ("lora", "qlora"):
        pairs = [(results.get((s, f"engine_{method}"), {}), results.get((s, f"trl_{method}"), {})) for s in SHAPES]
        if all("steady_tokens_per_second" in e and "steady_tokens_per_second" in t for e, t in pairs):
            ratios = [e["steady_tokens_per_second"] / t["steady_tokens_per_second"] for e, t in pairs]
            mem = all(e["peak_mb"] <= t["peak_mb"] for e, t in pairs)
            mems = " / ".join(f"{e['peak_mb']:,.0f} vs {t['peak_mb']:,.0f} MB" for e, t in pairs)
            print(
                f"goal: engine {method} tokens/s >= TRL padding-free at every shape: "
                f"{' / '.join(f'{x:.2f}x' for x in ratios)}, {'met' if min(ratios) >= 1 else 'NOT met'}"
            )
            print(
                f"goal: engine {method} peak memory <= TRL padding-free at every shape: {mems}, "
                f"{'met' if mem else 'NOT met'}"
            )
        else:
            print(f"goal: engine {method} against TRL padding-free: not measured (a side failed or was skipped)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--side", choices=SIDES)
    parser.add_argument("--model")
    parser.add_argument("--shape", choices=list(SHAPES))
    parser.add_argument("--steps", type=int, default=0)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.side:
        print(json.dumps(child(args.side, args.model, args.shape, args.steps)))
        return
    import torch

    cuda = torch.cuda.is_available()
    card = peak_flops()
    work = Path(tempfile.mkdtemp(prefix="train-gpu-"))
    started = time.perf_counter()
    params = build_model(work / "model", "smoke" if args.smoke else "1b")
    print(f"model built in {time.perf_counter() - started:.0f} s", flush=True)
    results = {}
    for shape, (_, _, _, steps) in SHAPES.items():
        for side in SIDES:
            if side.endswith("qlora") and not cuda:
                results[(shape, side)] = {"error": "skipped: QLoRA needs a CUDA GPU"}
                continue
            results[(shape, side)] = r = spawn(side, work / "model", shape, 4 if args.smoke else steps)
            print(f"{shape} / {side}: {json.dumps({k: v for k, v in r.items() if k != 'log'})}", flush=True)
            if "log" in r and os.environ.get("BENCH_VERBOSE"):
                print(r["log"], file=sys.stderr)
    report(results, params, card)


if __name__ == "__main__":
    main()
