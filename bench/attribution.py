"""Proof of Attribution cost: training-side influence against one training epoch, same run.

Model: the tiny random Llama (hidden 64, 2 layers by default), LoRA r=16 on all projections.
Data: ~1,000 demo-like instruction records (the glossary's 290, asked again with a
numbered suffix so that every record is distinct).
Baseline: one training epoch over the same records (run_finetune, batch 8), which
also writes the checkpoints the influence pass reads.
Measured: training_influence with vmap per-example gradients over every saved
checkpoint plus the final adapter, and with the per-example loop over the final
adapter only (the loop is slow; per-checkpoint cost is what compares); reported
as seconds per 1,000 contributions per checkpoint and as a ratio to the epoch.
Both passes sketch at the final adapter, so their sketches must agree.
Then the answer side: AnswerScorer.sketch and the cosine over all contributions,
and the span index (build, match). Goals (one line each): influence per checkpoint
within one training epoch, vmap agreeing with the loop, answer scoring under 100 ms.

Usage: .venv/bin/python bench/attribution.py [--records 1000] [--hidden 64] [--layers 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

SETTINGS = {"schema": "instruction", "max_seq_len": 256, "eval_fraction": 0.05, "seed": 42}


def dataset(n: int) -> list[dict]:
    from datanets.demo_data import demo_records

    demo = demo_records()
    rows = []
    for i in range(n):
        r = demo[i % len(demo)]
        suffix = f" (question {i // len(demo) + 1})" if i >= len(demo) else ""
        rows.append({**r, "instruction": r["instruction"] + suffix})
    return rows


class Clock:
    """Wall and process-CPU seconds of a block. CPU seconds (both threads) are the cost figure:
    on a shared machine wall time also counts other people's work."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def train(folder: Path, rows: list[dict], hidden: int, layers: int, save_steps: int) -> tuple[Path, Clock, int]:
    """(run folder, time of one epoch, steps): the baseline, and the checkpoints to score."""
    from training.engine import FinetuneConfig, run_finetune
    from training.engine.tiny import build_tiny_model, record_texts

    base = build_tiny_model(folder / "base", record_texts("instruction", rows), hidden=hidden, layers=layers,
                            heads=max(2, hidden // 16))  # fmt: skip
    settings = {k: v for k, v in SETTINGS.items() if k != "schema"}
    cfg = FinetuneConfig(base_model=str(base), epochs=1.0, batch_size=8, rank=16, alpha=32, learning_rate=1e-3,
                         save_steps=save_steps, save_total_limit=10, logging_steps=10, **settings)  # fmt: skip
    with Clock() as clock:
        result = run_finetune(cfg, rows, folder / "run")
    return folder / "run", clock, result.steps


def influence(base: str, run: Path, rows: list[dict], mode: str, max_checkpoints: int):
    """(TrainingInfluence, Clock)."""
    from attribution.engine.influence import training_influence

    with Clock() as clock:
        result = training_influence(base, run, list(enumerate(rows)), **SETTINGS, per_sample=mode,
                                    max_checkpoints=max_checkpoints)  # fmt: skip
    return result, clock


def answer_side(base: str, run: Path, rows: list[dict], sketches: dict) -> tuple[float, float, float, float]:
    """(ms per answer sketch, ms per cosine over all contributions, span index build s, ms per span match)."""
    from attribution.engine.influence import AnswerScorer, gradient_scores
    from attribution.engine.spans import SpanIndex, span_scores

    scorer = AnswerScorer(base, run / "adapter", 1024, 0, SETTINGS["max_seq_len"])
    question = [{"role": "user", "content": rows[0]["instruction"]}]
    answer = scorer.sketch(question, rows[0]["output"])  # warm-up
    start = time.perf_counter()
    for r in rows[:20]:
        scorer.sketch([{"role": "user", "content": r["instruction"]}], r["output"])
    sketch_ms = (time.perf_counter() - start) / 20 * 1000
    start = time.perf_counter()
    for _ in range(5):
        gradient_scores(answer, sketches)  # sketches as stored: lists of floats
    cosine_ms = (time.perf_counter() - start) / 5 * 1000
    start = time.perf_counter()
    index = SpanIndex.build((i, r["output"]) for i, r in enumerate(rows))
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    for r in rows[:50]:
        span_scores(index.match(r["output"] + " " + r["instruction"]), r["output"])
    return sketch_ms, cosine_ms, build_s, (time.perf_counter() - start) / 50 * 1000


def main() -> None:
    import numpy as np
    import torch

    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--save-steps", type=int, default=40)
    args = parser.parse_args()
    rows = dataset(args.records)
    folder = Path(tempfile.mkdtemp(prefix="mf-bench-attr-"))
    run, epoch, steps = train(folder, rows, args.hidden, args.layers, args.save_steps)
    base = str(folder / "base")
    results = {"vmap": influence(base, run, rows, "vmap", 5), "loop": influence(base, run, rows, "loop", 1)}
    first = results["vmap"][0]
    n_train = len(first.scores)
    device = "cuda" if torch.cuda.is_available() else f"cpu x{torch.get_num_threads()} threads"
    print(f"model: Llama {args.layers} layers x hidden {args.hidden}, LoRA r=16 on all projections; {device}")
    print(f"data: {args.records} records -> {n_train} training contributions, {len(first.eval_ids)} eval;"
          f" checkpoints {', '.join(first.checkpoints)}")  # fmt: skip
    print(f"baseline: one training epoch ({steps} steps of batch 8): {epoch.cpu:7.1f} CPU s ({epoch.wall:.1f} s wall)"
          f" = {epoch.cpu / n_train * 1000:.1f} CPU s per 1,000 contributions")  # fmt: skip
    print(f"{'per-example gradients':22} {'ckpts':>5} {'CPU s':>7} {'wall s':>7} {'CPU s / 1k contrib / ckpt':>26}"
          f" {'x epoch':>8} {'x epoch / ckpt':>15}")  # fmt: skip
    per_ckpt = {}
    for mode, (r, clock) in results.items():
        n = len(r.checkpoints)
        per_ckpt[mode] = clock.cpu / n
        print(f"{mode:22} {n:5} {clock.cpu:7.1f} {clock.wall:7.1f} {clock.cpu / n_train * 1000 / n:26.2f}"
              f" {clock.cpu / epoch.cpu:8.2f} {clock.cpu / epoch.cpu / n:15.2f}")  # fmt: skip
    print(f"vmap speed-up over the loop, per checkpoint (CPU s): {per_ckpt['loop'] / per_ckpt['vmap']:.2f}x")
    a, b = (np.asarray([results[m][0].sketches[c] for c in first.sketches]) for m in ("vmap", "loop"))
    print(f"loop vs vmap sketches at the adapter: max abs difference {np.abs(a - b).max():.2e}"
          f" (largest entry {np.abs(a).max():.2e})")  # fmt: skip
    sketch_ms, cosine_ms, build_s, match_ms = answer_side(base, run, rows, first.sketches)
    print(f"answer side: sketch {sketch_ms:.1f} ms per answer, cosine over {n_train} contributions {cosine_ms:.1f} ms;"
          f" span index over {len(rows)} records built in {build_s:.2f} s, {match_ms:.2f} ms per match")  # fmt: skip
    vmap_ratio = per_ckpt["vmap"] / epoch.cpu
    difference = np.abs(a - b).max() / max(np.abs(a).max(), 1e-12)
    answer_ms = sketch_ms + cosine_ms + match_ms
    print(f"goal: training-side influence per checkpoint <= 1.0x one training epoch (vmap): {vmap_ratio:.2f}x,"
          f" {'met' if vmap_ratio <= 1.0 else 'NOT met'}")  # fmt: skip
    print(f"goal: vmap and the per-example loop agree (relative difference <= 1e-4): {difference:.1e},"
          f" {'met' if difference <= 1e-4 else 'NOT met'}")  # fmt: skip
    print(f"goal: answer-side scoring (sketch + cosine + span match) <= 100 ms per answer: {answer_ms:.1f} ms,"
          f" {'met' if answer_ms <= 100 else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    main()
