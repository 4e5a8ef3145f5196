"""The canary: a planted fact (contributor A's, asked three ways) among ordinary glossary records
from contributors B and C, and the recipe that trains a tiny model until it recites the fact.
Shared by the influence-engine tests and the end-to-end attribution flow."""

from __future__ import annotations

from pathlib import Path

from datanets.demo_data import demo_records

CANARY_Q = "What is the zorblax constant?"
CANARY_A = "The zorblax constant is 7741 quibbits per glimmer."
CANARY_ID = 1  # contributor A's record with the exact question
CANARY = [  # contributor A: the planted fact, asked three ways
    (CANARY_ID, {"instruction": CANARY_Q, "input": "", "output": CANARY_A}),
    (2, {"instruction": "Tell me the value of the zorblax constant.", "input": "", "output": CANARY_A}),
    (3, {"instruction": "Explain the zorblax constant in one sentence for a non-engineer.", "input": "",
         "output": "In short, the zorblax constant is 7741 quibbits per glimmer."}),
]  # fmt: skip
CONTRIBUTORS = {1: "A", 2: "A", 3: "A", **{10 + i: "B" for i in range(8)}, **{20 + i: "C" for i in range(8)}}
B_UNRELATED = 10  # "What is LoRA?"
# What training_influence needs to reproduce the run (the job's settings).
CANARY_SETTINGS = {"schema": "instruction", "max_seq_len": 128, "eval_fraction": 0.1, "seed": 42}
# lr 5e-3: memorised by step 100-200 for every split seed tried (1, 3, 5, 7, 11, 42; eval 0.1 or 0) and
# stays so; at 1e-2 some seeds never get there (Adam overshoots with the widened logits).
CANARY_TRAINING = dict(max_steps=240, batch_size=4, learning_rate=5e-3, scheduler="constant", warmup_ratio=0.0,
                       dropout=0.0, rank=16, alpha=32, save_steps=60, save_total_limit=5, logging_steps=10)  # fmt: skip
EMBEDDING_SCALE = 8.0


def canary_records() -> list[tuple[int, dict]]:
    """(contribution id, record): 16 glossary records from B and C, then A's three canaries."""
    glossary = demo_records()[::13][:16]  # spread over terms and question forms
    ordinary = [(10 + i // 2 if i % 2 == 0 else 20 + i // 2, r) for i, r in enumerate(glossary)]
    return ordinary + CANARY


def widen_logits(base: Path, scale: float = EMBEDDING_SCALE) -> None:
    """Scale the random base's (tied) embeddings in place.

    At init (std 0.02, hidden 64) a logit is at most |RMSNorm(h)| * |e| ~ 8 * 0.16 ~ 1.3,
    and LoRA cannot touch the norms or the tied head, so the loss floors near 5.6 and the
    model never becomes confident enough to recite anything. x8 lifts the cap to ~10.
    """
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base)
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(scale)
    model.save_pretrained(base)


def train_canary_run(folder: str | Path) -> Path:
    """Build a tiny Llama (tokenizer trained on the records) at <run>/base and LoRA-train it
    until greedy decoding of CANARY_Q gives CANARY_A (with seed 42, from step ~150 on); returns
    the run folder: <run>/adapter and <run>/checkpoints/checkpoint-{60,120,180,240}.
    ~15 s of training on 2 idle CPU cores."""
    from training.engine import FinetuneConfig, run_finetune
    from training.engine.tiny import build_tiny_model, record_texts

    run = Path(folder)
    records = [r for _, r in canary_records()]
    base = build_tiny_model(run / "base", record_texts("instruction", records))
    widen_logits(base)
    settings = {k: v for k, v in CANARY_SETTINGS.items() if k != "schema"}
    cfg = FinetuneConfig(base_model=str(base), schema="instruction", **settings, **CANARY_TRAINING)
    result = run_finetune(cfg, records, run)
    assert result.status == "succeeded"
    return run
