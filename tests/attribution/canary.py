"""The canary: a planted fact (contributor A's, asked three ways) among ordinary glossary records
from contributors B and C, and a Quick run on the demo model that learns to recite it.
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
# What training_influence needs to reproduce the run (the job's settings).
CANARY_SETTINGS = {"schema": "instruction", "max_seq_len": 128, "eval_fraction": 0.1, "seed": 42}
# The Quick preset as users get it on the demo model; only checkpoints are saved more often, for TracIn.
CANARY_OVERRIDES = {**CANARY_SETTINGS, "save_steps": 20, "save_total_limit": 5}


def canary_records() -> list[tuple[int, dict]]:
    """(contribution id, record): 16 glossary records from B and C, then A's three canaries."""
    glossary = demo_records()[::13][:16]  # spread over terms and question forms
    ordinary = [(10 + i // 2 if i % 2 == 0 else 20 + i // 2, r) for i, r in enumerate(glossary)]
    return ordinary + CANARY


def canary_config(base: str | Path):
    """The Quick preset for the demo model and the canary records (60 steps at lr 2e-3)."""
    from training.base_models import inspect
    from training.engine.config import config_from

    return config_from("quick", CANARY_OVERRIDES, parameter_count=inspect(str(base)).parameter_count,
                       records=len(canary_records()), base_model=str(base))  # fmt: skip


def train_canary_run(folder: str | Path, base: str | Path) -> Path:
    """LoRA-train the demo model on the canary records with the Quick preset, until greedy decoding
    of CANARY_Q gives CANARY_A; returns the run folder: <run>/adapter and <run>/checkpoints/."""
    from training.engine import run_finetune

    run = Path(folder)
    result = run_finetune(canary_config(base), [r for _, r in canary_records()], run)
    assert result.status == "succeeded"
    return run
