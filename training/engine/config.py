"""FinetuneConfig: every knob of a LoRA / QLoRA / DoRA run, checked on creation.

The single source of training knobs: each field's metadata (label, help, bounds,
choices, whether the form shows it) generates the training form, the API's
config serializer and docs/training-knobs.md, and `__post_init__` validates from
it. Presets live in PRESETS, used by form and API alike. A config is built once
(form or API), stored on the job as `to_dict()` and handed to the engine as an
object; it is saved as run_config.json beside the adapter.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from training.engine.batching import examples_per_step
from training.engine.knobs import KINDS, ConfigError, Knob, knob, number_text

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

# Settings that come from the request itself (the chosen base model and the Datanets' schema),
# not from the Advanced knobs: the form and the API fill them in.
DERIVED = ("base_model", "schema")


@dataclass
class FinetuneConfig:
    base_model: str = knob(
        "", "Base model", "Hugging Face model id or a local folder with config.json and weights.",
        advanced=False, required=True, message="choose a base model",
    )  # fmt: skip
    schema: str = knob(
        "instruction", "Record schema", "The shape of the Datanets' records: text, instruction or chat.",
        advanced=False, choices=(("text", "Plain text"), ("instruction", "Instruction and answer"), ("chat", "Chat")),
    )  # fmt: skip
    method: str = knob(
        "lora", "Method", "LoRA trains a small adapter; QLoRA does so over a 4-bit base (CUDA GPU only) to save "
        "memory; DoRA is a LoRA variant that adapts the size and direction of weights separately.",
        choices=(("lora", "LoRA"), ("qlora", "QLoRA (4-bit base, CUDA GPU only)"), ("dora", "DoRA")),
    )  # fmt: skip
    rank: int = knob(
        16, "Adapter rank", "Size of the adapter (LoRA rank r): larger learns more but needs more memory.",
        min=1, max=1024, message="must be between 1 and 1024",
    )  # fmt: skip
    alpha: int = knob(
        32, "Adapter alpha", "Strength of the adapter: its update is scaled by alpha / rank.",
        min=1, max=4096, message="must be between 1 and 4096",
    )  # fmt: skip
    dropout: float = knob(
        0.05, "Dropout", "Share of adapter inputs dropped at random while training, against overfitting.",
        min=0.0, max=1.0, max_exclusive=True, message="must be in [0, 1)",
    )  # fmt: skip
    target_modules: list[str] | None = knob(
        None, "Target modules", "Layers to adapt, e.g. q_proj, v_proj; empty picks them per architecture.",
        message="must be a non-empty list of module names, or left to the default",
    )  # fmt: skip
    learning_rate: float = knob(
        2e-4, "Learning rate", "How big each update step is at its peak: too high diverges, too low learns slowly.",
        min=0.0, max=1.0, min_exclusive=True, message="must be in (0, 1]",
    )  # fmt: skip
    scheduler: str = knob(
        "cosine", "Learning rate schedule", "How the learning rate changes over the run after warm-up.",
        choices=(("linear", "linear decay"), ("cosine", "cosine decay"), ("constant", "constant"),
                 ("constant_with_warmup", "constant after warm-up")),
    )  # fmt: skip
    warmup_ratio: float = knob(
        0.03, "Warm-up share", "Share of the steps spent slowly raising the learning rate.",
        min=0.0, max=1.0, max_exclusive=True, message="must be in [0, 1)",
    )  # fmt: skip
    epochs: float = knob(
        1.0, "Epochs", "Passes over the data (ignored when max steps is above 0).",
        min=0.0, max=100, min_exclusive=True, message="must be in (0, 100]",
    )  # fmt: skip
    max_steps: int = knob(
        0, "Max steps", "Stop after this many optimiser steps; 0 = use epochs.",
        min=0, max=1_000_000, message="must be between 0 and 1,000,000",
    )  # fmt: skip
    batch_size: int = knob(
        8, "Batch size", "Examples per device per step; lower it if the GPU runs out of memory.",
        min=1, max=1024, message="must be between 1 and 1024",
    )  # fmt: skip
    grad_accum: int = knob(
        1, "Gradient accumulation", "Batches summed into one optimiser step: a larger effective batch, same memory.",
        min=1, max=1024, message="must be between 1 and 1024",
    )  # fmt: skip
    max_seq_len: int = knob(
        512, "Max sequence length", "Longest example in tokens; longer ones are truncated.",
        min=16, max=131072, message="must be between 16 and 131,072",
    )  # fmt: skip
    packing: bool = knob(
        True, "Packing", "Padding-free batches: examples concatenated, never attending to each other.",
        choices=((True, "padding-free packing"), (False, "padded batches")),
    )  # fmt: skip
    varlen: bool = knob(
        True, "Attention per example", "With packing, each example's attention is computed on its own (varlen): "
        "the whole batch in one row with no padding, attention costing each example's length squared. Off: rows "
        "of at most max sequence length with a block mask over each row (stock sdpa).",
        choices=((True, "on"), (False, "off: rows with masks")),
    )  # fmt: skip
    processes: int = knob(
        1, "Devices", "Train on this many devices at once (data parallel, one process each, through torchrun).",
        min=1, max=64, message="must be between 1 and 64",
    )  # fmt: skip
    hosts: int = knob(
        1, "Hosts", "Train on this many machines at once, each with the chosen number of devices (data parallel "
        "through torchrun): faster for large jobs; it needs that many training machines free at the same time.",
        min=1, max=64, message="must be between 1 and 64",
    )  # fmt: skip
    answer_only_head: bool = knob(
        True, "Answer-only output layer", "Compute the output layer and loss only on answer tokens, in chunks, "
        "each chunk's gradient in the same pass: never the full tokens × vocabulary logits and no second pass "
        "over them in backward (less memory and faster, more so with large vocabularies).",
        choices=((True, "on"), (False, "off: every position, as transformers does")),
    )  # fmt: skip
    batch_tokens: int = knob(
        0, "Tokens per batch", "Size each batch by tokens instead of examples: as many examples as fit in this "
        "many tokens (with packing, full rows of max sequence length: use a multiple of it), so long and short "
        "steps cost alike; 0 = batch size examples. Steps per pass then depend on the data's lengths.",
        min=0, max=10_000_000, message="must be between 0 and 10,000,000",
    )  # fmt: skip
    fast_dropout: bool = knob(
        True, "Fast LoRA dropout", "On CPU, find the dropped inputs by geometric skips: one random number per "
        "dropped element instead of one per element, each still dropped on its own with exactly the asked "
        "probability, and zero them instead of multiplying by a mask. Drawing and applying masks had been a "
        "third of a CPU step; on GPUs the stock dropout is used either way.",
        choices=((True, "on"), (False, "off: torch's dropout")),
    )  # fmt: skip
    fused_lora: bool = knob(
        True, "Fused LoRA layers", "Run each LoRA projection as one step: the scaling on the small rank-r "
        "product, the LoRA output added in place, and the dropped input recomputed in backward instead of "
        "kept (less memory). Same values and gradients as PEFT's; on CPU (GPUs use PEFT's layers for now).",
        choices=((True, "on"), (False, "off: PEFT's layers")),
    )  # fmt: skip
    fused_mlp: bool = knob(
        True, "Fused MLP activation", "Compute the MLP's gate activation and its product with the up projection "
        "as one step, piece by piece, keeping only their inputs for backward: one large tensor fewer per layer "
        "in memory, the same values and gradients, speed unchanged in the training benchmark. On CPU, for "
        "SiLU-gated MLPs (Llama, Mistral, Qwen); others run as transformers does.",
        choices=((True, "on"), (False, "off: as transformers does")),
    )  # fmt: skip
    fused_norm: bool = knob(
        True, "Fused norm and rotary layers", "On CPU, run each RMSNorm and the rotary position embedding as "
        "one step with a backward in closed form: fewer passes over the activations (nothing kept in fp32), "
        "the same values (bit for bit in bf16) and gradients within rounding. For Llama-style norms and "
        "rotary embeddings (Llama, Mistral, Qwen); others run as transformers does.",
        choices=((True, "on"), (False, "off: as transformers does")),
    )  # fmt: skip
    reuse_memory: bool = knob(
        True, "Reuse freed memory", "On CPU, keep memory freed by one step for the next step's tensors instead of "
        "handing it back to the system and taking fresh pages (glibc's malloc settings); given back when the run "
        "ends. Large tensors then skip the kernel's page zeroing and faults: measured 0.98-1.09x the speed for "
        "up to ~100 MB more peak memory (gains in fp32, none in the latest bf16 run). No effect on GPUs.",
        choices=((True, "on"), (False, "off: glibc's defaults")),
    )  # fmt: skip
    compile: bool = knob(
        False, "Compile (torch.compile)", "Compile the model's layers with torch.compile. Compiling costs 5-20 s "
        "at the start of every run (and resume); on CPU the compiled steps were 0.92-1.17x the speed of "
        "uncompiled ones in the training benchmark (bf16 and fp32), paying back the compiling after ~60 steps "
        "at best and never at worst, so it is off. Without a C++ compiler on the worker the run continues "
        "uncompiled.",
        choices=((True, "on"), (False, "off")),
    )  # fmt: skip
    seed: int = knob(
        42, "Random seed", "Seed for shuffling and initialisation; the same seed repeats a run.",
        min=0, max=2**31 - 1, message="must be between 0 and 2,147,483,647",
    )  # fmt: skip
    eval_fraction: float = knob(
        0.05, "Held-out share", "Share of records held out to measure eval loss (0 = none).",
        min=0.0, max=0.5, message="must be between 0 and 0.5",
    )  # fmt: skip
    precision: str = knob(
        "auto", "Precision",
        "Number format for training: auto picks bf16 where the hardware multiplies it natively (recent GPUs; "
        "CPUs with AVX512-BF16 or AMX, where it trained 1.04-1.9x as fast as fp32 with the same loss, more for "
        "larger batches), else fp32.",
        choices=(("auto", "auto"), ("fp32", "fp32"), ("bf16", "bf16"), ("fp16", "fp16")),
    )  # fmt: skip
    gradient_checkpointing: bool = knob(
        False, "Gradient checkpointing", "Recompute activations to save memory, at some cost in speed.",
        choices=((True, "on (saves memory)"), (False, "off")),
    )  # fmt: skip
    logging_steps: int = knob(
        1, "Logging steps", "Report metrics every N optimiser steps.",
        min=1, max=10_000, message="must be between 1 and 10,000",
    )  # fmt: skip
    eval_steps: int = knob(
        0, "Eval steps", "Measure eval loss every N steps (0 = at the end only).",
        min=0, max=1_000_000, message="must be 0 or more",
    )  # fmt: skip
    save_steps: int = knob(
        50, "Save steps", "Checkpoint every N steps so a stopped run can resume (0 = no intermediate checkpoints).",
        min=0, max=1_000_000, message="must be 0 or more",
    )  # fmt: skip
    save_total_limit: int = knob(
        2, "Checkpoints kept", "Checkpoints kept on disk.",
        min=1, max=100, message="must be between 1 and 100", advanced=False,
    )  # fmt: skip

    def __post_init__(self):
        for spec in knobs():
            value = spec.coerce(getattr(self, spec.name))
            problem = spec.problem(value)
            if problem:
                raise ConfigError(spec.name, problem)
            setattr(self, spec.name, value)

    def steps_per_pass(self, records: int, tokens_per_record: float | None = None) -> int:
        """Optimiser steps in one pass over `records` records, less the held-out share, each step taking a
        batch on every process of every host. With batch_tokens,
        a batch's examples depend on their lengths: given `tokens_per_record` (mean), it estimates them;
        without, it counts batch_size examples per batch (the run itself counts the real batches)."""
        trained = max(1, round(records * (1 - self.eval_fraction)))
        per_batch: float = self.batch_size
        if self.batch_tokens and tokens_per_record:
            per_batch = examples_per_step(self.batch_tokens, tokens_per_record)
        return math.ceil(trained / (per_batch * self.grad_accum * self.processes * self.hosts))

    def modules_for(self, architecture: str) -> list[str] | str:
        if self.target_modules:
            return list(self.target_modules)
        return TARGET_MODULES.get(architecture, "all-linear")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping) -> FinetuneConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(sorted(unknown)[0], "is not a setting")
        return cls(**data)


def knobs() -> Iterator[Knob]:
    """Every FinetuneConfig field with its metadata, in declaration order."""
    for f in dataclasses.fields(FinetuneConfig):
        yield Knob(name=f.name, kind=KINDS[f.type], default=f.default, **f.metadata["knob"])


KNOBS: dict[str, Knob] = {k.name: k for k in knobs()}
METHODS = KNOBS["method"].values
SCHEDULERS = KNOBS["scheduler"].values
PRECISIONS = KNOBS["precision"].values
SCHEMAS = KNOBS["schema"].values


# Below this many parameters a base model is demo-sized: a LoRA adapter on it needs a larger learning rate
# to move it (measured on the built-in demo model; see docs/training-knobs.md).
SMALL_MODEL_PARAMETERS = 100_000_000


@dataclass(frozen=True)
class Preset:
    """Named values over the defaults. `small` replaces some of them for demo-sized base models;
    `min_steps` gives small Datanets more passes (up to `max_epochs`) so that a run takes at least
    that many optimiser steps: one pass over 50 records is 6 steps, too few to learn anything."""

    name: str
    label: str
    description: str
    values: Mapping[str, Any]
    small: Mapping[str, Any] = field(default_factory=dict)
    min_steps: int = 0
    max_epochs: float = 1.0

    @property
    def choice_label(self) -> str:
        return f"{self.label} — {self.description}"

    def values_for(self, parameter_count: int | None) -> dict:
        values = dict(self.values)
        if parameter_count and parameter_count < SMALL_MODEL_PARAMETERS:
            values.update(self.small)
        return values

    def epochs_for(self, records: int, cfg: FinetuneConfig) -> float:
        """The config's passes, or more when `records` give fewer than min_steps steps (capped)."""
        if not self.min_steps or records <= 0:
            return cfg.epochs
        passes = math.ceil(self.min_steps / cfg.steps_per_pass(records))
        return float(min(max(cfg.epochs, passes), self.max_epochs))


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("quick", "Quick", "a first try in minutes",
               {"epochs": 1.0, "rank": 8, "alpha": 16, "learning_rate": 3e-4, "max_seq_len": 256, "batch_size": 8},
               small={"learning_rate": 2e-3}, min_steps=90, max_epochs=20),
        Preset("balanced", "Balanced", "two passes or more with a mid-size adapter",
               {"epochs": 2.0, "rank": 16, "alpha": 32, "learning_rate": 2e-4, "max_seq_len": 512, "batch_size": 8},
               small={"learning_rate": 1.5e-3}, min_steps=200, max_epochs=30),
        Preset("thorough", "Thorough", "three passes or more, a larger adapter and longer examples; slowest",
               {"epochs": 3.0, "rank": 32, "alpha": 64, "learning_rate": 1e-4, "max_seq_len": 1024,
                "batch_size": 8}, small={"learning_rate": 1e-3}, min_steps=400, max_epochs=40),
        Preset("custom", "Custom", "only the Advanced values over the defaults", {}),
    )
}  # fmt: skip


def config_from(
    preset: str, overrides: Mapping, *, parameter_count: int | None = None, records: int = 0, **fixed
) -> FinetuneConfig:
    """The preset's values (for a model of `parameter_count`), then the overrides that are set (not None
    or ""), then `fixed`, validated once. Unless epochs or max steps are set, a preset with min_steps
    sizes the passes to `records` (the Datanets' accepted records)."""
    if preset not in PRESETS:
        raise ConfigError("preset", f"must be one of {', '.join(PRESETS)}")
    chosen = {k: v for k, v in overrides.items() if v is not None and v != ""}
    cfg = FinetuneConfig.from_dict(PRESETS[preset].values_for(parameter_count) | chosen | dict(fixed))
    if "epochs" not in chosen and not cfg.max_steps:
        epochs = PRESETS[preset].epochs_for(records, cfg)
        if epochs != cfg.epochs:
            cfg = dataclasses.replace(cfg, epochs=epochs)
    return cfg


def knobs_markdown() -> str:
    """docs/training-knobs.md: every knob and preset, generated from the metadata."""

    def cell(value) -> str:
        text = "—" if value is None or value == "" else str(value).lower() if isinstance(value, bool) else str(value)
        return text.replace("|", "\\|")

    lines = [
        "# Training knobs",
        "",
        "Generated from `training/engine/config.py` by `knobs_markdown()`; a test keeps this file in step.",
        "Empty Advanced fields in the form (and settings left out of the API's `config`) take the preset's value,",
        "else the default.",
        "",
        "| setting | label | default | allowed | in the form | help |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for k in knobs():
        default = ", ".join(k.default) if isinstance(k.default, list) else k.default
        shown = "Advanced" if k.advanced else ("filled in" if k.name in DERIVED else "API only")
        lines.append(
            f"| `{k.name}` | {cell(k.label)} | {cell(default)} | {cell(k.bounds_text())} | {shown} | {cell(k.help)} |"
        )
    lines += [
        "", "## Presets", "",
        f"A base model under {SMALL_MODEL_PARAMETERS:,} parameters (the built-in demo model) takes the values in",
        "*demo-sized models* instead. Unless epochs or max steps are set, a preset with *at least* gives",
        "small Datanets more passes, up to its cap, so that a run takes at least that many optimiser steps.",
        "", "| preset | label | description | values | demo-sized models | at least |",
        "| --- | --- | --- | --- | --- | --- |",
    ]  # fmt: skip
    for p in PRESETS.values():
        values = ", ".join(f"`{k}` = {v}" for k, v in p.values.items()) or "none: the defaults"
        small = ", ".join(f"`{k}` = {v}" for k, v in p.small.items()) or "—"
        least = f"{p.min_steps} steps, at most {number_text(p.max_epochs)} epochs" if p.min_steps else "—"
        lines.append(f"| `{p.name}` | {cell(p.label)} | {cell(p.description)} | {values} | {small} | {least} |")
    return "\n".join(lines) + "\n"
