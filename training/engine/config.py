"""FinetuneConfig: every knob of a LoRA / QLoRA / DoRA run, checked on creation.

Saved as run_config.json beside the adapter and on the job row; forms and API
serializers build it, views never assemble one by hand.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

METHODS = ("lora", "qlora", "dora")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
SCHEMAS = ("text", "instruction", "chat")

# Attention and MLP projections per architecture (peft's defaults cover fewer).
TARGET_MODULES = {
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gemma": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
    "gpt2": ["c_attn", "c_proj", "c_fc"],
    "gpt_neox": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
}


class ConfigError(ValueError):
    """A config value out of range; `field` names it for field-level form errors."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


def _help(text: str, **kw):
    return field(metadata={"help": text}, **kw)


@dataclass
class FinetuneConfig:
    base_model: str = _help("Hugging Face model id or a local folder with config.json and weights.", default="")
    schema: str = _help("Record schema: text, instruction or chat.", default="instruction")
    method: str = _help("lora, qlora (4-bit nf4 base, CUDA only) or dora.", default="lora")
    rank: int = _help("LoRA rank r.", default=16)
    alpha: int = _help("LoRA alpha; the update is scaled by alpha / rank.", default=32)
    dropout: float = _help("LoRA dropout.", default=0.05)
    target_modules: list[str] | None = _help("Modules to adapt; None picks them per architecture.", default=None)
    learning_rate: float = _help("Peak learning rate.", default=2e-4)
    scheduler: str = _help("linear, cosine, constant or constant_with_warmup.", default="cosine")
    warmup_ratio: float = _help("Fraction of steps spent warming up.", default=0.03)
    epochs: float = _help("Passes over the data (ignored when max_steps > 0).", default=1.0)
    max_steps: int = _help("Stop after this many optimiser steps; 0 = use epochs.", default=0)
    batch_size: int = _help("Sequences per device per step.", default=8)
    grad_accum: int = _help("Micro-batches per optimiser step.", default=1)
    max_seq_len: int = _help("Longest example in tokens; longer ones are truncated.", default=512)
    packing: bool = _help("Padding-free batches: examples concatenated, never attending to each other.", default=True)
    seed: int = _help("Random seed for shuffling and init.", default=42)
    eval_fraction: float = _help("Share of records held out for eval loss (0 = none).", default=0.05)
    precision: str = _help("auto (bf16 on capable GPUs, else fp32), fp32, bf16 or fp16.", default="auto")
    gradient_checkpointing: bool = _help("Recompute activations to save memory.", default=False)
    logging_steps: int = _help("Report metrics every N optimiser steps.", default=1)
    eval_steps: int = _help("Eval every N steps (0 = at the end only).", default=0)
    save_steps: int = _help("Checkpoint every N steps (0 = no intermediate checkpoints).", default=50)
    save_total_limit: int = _help("Checkpoints kept on disk.", default=2)

    def __post_init__(self):
        checks = [
            ("base_model", bool(self.base_model), "choose a base model"),
            ("schema", self.schema in SCHEMAS, f"must be one of {', '.join(SCHEMAS)}"),
            ("method", self.method in METHODS, f"must be one of {', '.join(METHODS)}"),
            ("rank", 1 <= self.rank <= 1024, "must be between 1 and 1024"),
            ("alpha", 1 <= self.alpha <= 4096, "must be between 1 and 4096"),
            ("dropout", 0.0 <= self.dropout < 1.0, "must be in [0, 1)"),
            ("learning_rate", 0.0 < self.learning_rate <= 1.0, "must be in (0, 1]"),
            ("scheduler", self.scheduler in SCHEDULERS, f"must be one of {', '.join(SCHEDULERS)}"),
            ("warmup_ratio", 0.0 <= self.warmup_ratio < 1.0, "must be in [0, 1)"),
            ("epochs", 0.0 < self.epochs <= 100, "must be in (0, 100]"),
            ("max_steps", 0 <= self.max_steps <= 1_000_000, "must be between 0 and 1,000,000"),
            ("batch_size", 1 <= self.batch_size <= 1024, "must be between 1 and 1024"),
            ("grad_accum", 1 <= self.grad_accum <= 1024, "must be between 1 and 1024"),
            ("max_seq_len", 16 <= self.max_seq_len <= 131072, "must be between 16 and 131,072"),
            ("eval_fraction", 0.0 <= self.eval_fraction <= 0.5, "must be between 0 and 0.5"),
            ("precision", self.precision in PRECISIONS, f"must be one of {', '.join(PRECISIONS)}"),
            ("logging_steps", 1 <= self.logging_steps <= 10_000, "must be between 1 and 10,000"),
            ("eval_steps", 0 <= self.eval_steps <= 1_000_000, "must be 0 or more"),
            ("save_steps", 0 <= self.save_steps <= 1_000_000, "must be 0 or more"),
            ("save_total_limit", 1 <= self.save_total_limit <= 100, "must be between 1 and 100"),
        ]
        for name, ok, message in checks:
            if not ok:
                raise ConfigError(name, message)
        if self.target_modules is not None and (
            not self.target_modules or not all(isinstance(m, str) and m for m in self.target_modules)
        ):
            raise ConfigError("target_modules", "must be a non-empty list of module names, or left to the default")

    def modules_for(self, architecture: str) -> list[str] | str:
        if self.target_modules:
            return list(self.target_modules)
        return TARGET_MODULES.get(architecture, "all-linear")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> FinetuneConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(sorted(unknown)[0], "is not a setting")
        return cls(**data)


PRESETS = {
    "quick": {"epochs": 1.0, "rank": 8, "alpha": 16, "learning_rate": 3e-4, "max_seq_len": 256, "batch_size": 8},
    "balanced": {"epochs": 2.0, "rank": 16, "alpha": 32, "learning_rate": 2e-4, "max_seq_len": 512, "batch_size": 8},
    "thorough": {"epochs": 3.0, "rank": 32, "alpha": 64, "learning_rate": 1e-4, "max_seq_len": 1024, "batch_size": 8},
}
