"""run_finetune: LoRA / QLoRA / DoRA training with transformers + peft.

No Django: takes a config, an iterable of records and an output folder, reports
through callbacks. Checkpoints carry a completion marker written after the save
finishes; a resumed run starts from the newest marked checkpoint and ignores a
half-written one.
"""

from __future__ import annotations

import errno
import json
import math
import shutil
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from training.engine import attention, batching, compiling, dropout, fused_lora, fused_mlp, fused_norm, heap
from training.engine import data as data_mod
from training.engine import loss as loss_mod
from training.engine import precision as precisions
from training.engine.config import FinetuneConfig

COMPLETE = "COMPLETE"  # marker file inside a fully written checkpoint
OOM_ADVICE = (
    "The GPU ran out of memory. Try a smaller batch size (raise gradient accumulation to keep the "
    "effective batch), shorter sequences, gradient checkpointing, or QLoRA."
)


class EngineError(RuntimeError):
    """A failure the user can act on; the message says how."""


@dataclass
class FinetuneResult:
    status: str  # "succeeded" or "cancelled"
    adapter_dir: Path | None
    steps: int
    metrics: dict = field(default_factory=dict)


def _last_complete_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint with its marker; unmarked (half-written) ones are removed."""
    if not folder.exists():
        return None
    complete = []
    for path in folder.glob("checkpoint-*"):
        if (path / COMPLETE).exists():
            complete.append(path)
        else:
            shutil.rmtree(path, ignore_errors=True)
    return max(complete, key=lambda p: int(p.name.split("-")[1]), default=None)


def load_base(cfg: FinetuneConfig):
    """Tokenizer and model from a hub id or a local folder, through from_pretrained."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if cfg.method == "qlora" and not torch.cuda.is_available():
        raise EngineError("QLoRA needs a CUDA GPU worker; choose LoRA on this worker.")
    try:
        tokenizer = AutoTokenizer.from_pretrained(cfg.base_model)
    except (OSError, ValueError) as exc:
        raise EngineError(f"Could not load the tokenizer of {cfg.base_model!r}: {exc}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    precision = precisions.resolve(cfg.precision, torch)
    kwargs: dict = {"dtype": {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)}
    if cfg.method == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if precision == "bf16" else torch.float16,
        )
    kwargs["attn_implementation"] = attention.implementation(cfg.packing and cfg.varlen, torch.cuda.is_available())
    try:
        model = AutoModelForCausalLM.from_pretrained(cfg.base_model, **kwargs)
    except (OSError, ValueError) as exc:
        raise EngineError(f"Could not load the weights of {cfg.base_model!r}: {exc}") from None
    # No KV cache in training: with one, transformers skips the packed-sequence masks, and the examples
    # packed in a row would attend to each other.
    model.config.use_cache = False
    precisions.cap_kernel_cache(model.device.type, precision)  # before the model's first product
    return tokenizer, model, precision


def _with_lora(cfg: FinetuneConfig, model):
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if cfg.method == "qlora":
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=cfg.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )  # fmt: skip
    lora = LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=cfg.modules_for(model.config.model_type),
        use_dora=cfg.method == "dora",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


class _TokenCounter:
    """Wraps a collator to count real (non-pad) tokens fed to the model."""

    def __init__(self, collator):
        self.collator, self.tokens = collator, 0

    def __call__(self, batch):
        out = self.collator(batch)
        mask = out.get("attention_mask")
        self.tokens += int(mask.sum()) if mask is not None else self.collator.tokens
        return out


def _collator(cfg: FinetuneConfig, row_len: int | None, pad_id: int, precision: str, device_type: str):
    multiple = precisions.row_multiple(precision, device_type, cfg.packing)
    if not cfg.packing:
        return data_mod.PaddingCollator(pad_id, multiple)
    return data_mod.PaddingFreeCollator(row_len, pad_id, multiple)


def run_finetune(
    cfg: FinetuneConfig,
    records: Iterable[dict],
    out_dir: str | Path,
    on_progress: Callable[[dict], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    card: dict | None = None,
    on_log_line: Callable[[str], None] | None = None,
) -> FinetuneResult:
    """Train an adapter on `records` into `out_dir`/adapter. Resumes from `out_dir`/checkpoints."""
    from transformers import Trainer, TrainerCallback, set_seed

    out_dir = Path(out_dir)
    say = on_log_line or (lambda line: None)
    tokenizer, model, precision = load_base(cfg)
    say(f"number format: {precision}" + (" (chosen automatically for this device)" if cfg.precision == "auto" else ""))
    with _actionable_errors():
        row_len = _row_len(cfg, model, say)  # runs the model once (a check of its attention)
    train_set, eval_set = _datasets(cfg, tokenizer, records, say)
    set_seed(cfg.seed)  # the adapter's initial weights come from the seed, whatever ran before in this process
    model = _with_lora(cfg, model)
    if cfg.fused_lora:
        fused_lora.install(model, cfg.fast_dropout)
    if cfg.fast_dropout:
        dropout.install(model)  # the layers the fused path leaves to PEFT
    if cfg.fused_mlp:
        fused_mlp.install(model)
    if cfg.fused_norm:
        fused_norm.install(model)
    if cfg.compile:
        compiling.compile_layers(model, say)
    collator = _TokenCounter(_collator(cfg, row_len, tokenizer.pad_token_id, precision, model.device.type))
    checkpoints = out_dir / "checkpoints"
    resume_from = _last_complete_checkpoint(checkpoints)
    progress = TrainingProgress(cfg, collator, on_progress, should_cancel, say)
    trainer_class = loss_mod.trainer_class(Trainer, cfg.answer_only_head)
    if cfg.batch_tokens:
        trainer_class = batching.trainer_class(trainer_class, cfg.batch_tokens, cfg.packing, row_len, cfg.seed)
    trainer = trainer_class(
        model=model,
        args=_training_args(cfg, checkpoints, precision, has_eval=bool(eval_set)),
        train_dataset=data_mod.ExampleDataset(train_set),
        eval_dataset=data_mod.ExampleDataset(eval_set) if eval_set else None,
        data_collator=collator,
        callbacks=[progress.as_callback(TrainerCallback)],
    )
    with _actionable_errors(), heap.reused(cfg.reuse_memory and model.device.type == "cpu"):
        if resume_from:
            say(f"resuming from {resume_from.name}")
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        if progress.cancelled:
            return FinetuneResult("cancelled", None, trainer.state.global_step)
        metrics = {"train_loss": progress.last_loss, "steps": trainer.state.global_step}
        if eval_set:
            metrics["eval_loss"] = trainer.evaluate()["eval_loss"]  # reported through on_log
        adapter_dir = (
            _save(cfg, trainer, tokenizer, out_dir, metrics, card or {}) if trainer.is_world_process_zero() else None
        )
    return FinetuneResult("succeeded", adapter_dir, trainer.state.global_step, metrics)


def _row_len(cfg: FinetuneConfig, model, say) -> int | None:
    """Padding-free rows: the whole batch in one row when the attention keeps examples apart at linear
    cost (varlen), else rows of at most max_seq_len under stock sdpa's block-diagonal mask."""
    if not cfg.packing:
        return None
    if model.config._attn_implementation != "sdpa" and attention.keeps_apart(model):
        return None
    if model.config._attn_implementation != "sdpa":
        model.set_attn_implementation("sdpa")
        say("this model's attention does not keep packed examples apart on its own: using sdpa with masks")
    return cfg.max_seq_len


def _datasets(cfg: FinetuneConfig, tokenizer, records: Iterable[dict], say) -> tuple[list, list]:
    """Train and eval examples; EngineError when nothing is left to train on."""
    train_set, eval_set, dropped = data_mod.build(
        tokenizer, cfg.schema, records, cfg.max_seq_len, cfg.eval_fraction, cfg.seed
    )
    if not train_set:
        raise EngineError("No trainable examples: the data is empty after filtering (or every answer was truncated).")
    say(f"{len(train_set)} training and {len(eval_set)} eval examples; {dropped} dropped")
    return train_set, eval_set


def _training_args(cfg: FinetuneConfig, checkpoints: Path, precision: str, has_eval: bool):
    """The Trainer's arguments for `cfg`: evals only with an eval set, checkpoints into `checkpoints`."""
    import torch
    from transformers import TrainingArguments

    eval_every = cfg.eval_steps if has_eval and cfg.eval_steps else 0
    return TrainingArguments(
        output_dir=str(checkpoints),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.scheduler,
        warmup_steps=cfg.warmup_ratio,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        logging_steps=cfg.logging_steps,
        eval_strategy="steps" if eval_every else "no",
        eval_steps=eval_every or None,
        save_strategy="steps" if cfg.save_steps else "no",
        save_steps=cfg.save_steps or 500,
        save_total_limit=cfg.save_total_limit,
        seed=cfg.seed,
        data_seed=cfg.seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        activation_checkpointing=cfg.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False},
        report_to="none",
        log_level="warning",
        remove_unused_columns=False,
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
    )


@contextmanager
def _actionable_errors():
    """Out of GPU memory and a full disk become EngineErrors that say what to do."""
    import torch

    try:
        yield
    except torch.cuda.OutOfMemoryError:
        raise EngineError(OOM_ADVICE) from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise EngineError(
                "The disk is full: free space on the worker (old checkpoints, caches) and retry."
            ) from None
        raise


class TrainingProgress:
    """Turns Trainer events into progress points; checks for cancel after each step."""

    def __init__(self, cfg, counter, on_progress, should_cancel, say):
        self.cfg, self.counter, self.on_progress = cfg, counter, on_progress
        self.should_cancel, self.say = should_cancel, say
        self.started = time.monotonic()
        self.start_tokens = 0
        self.start_step = 0
        self.cancelled = False
        self.last_loss = None

    def report(self, state, logs: dict, final: bool = False) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        steps_done = max(state.global_step - self.start_step, 0)
        total = state.max_steps or 1
        rate = steps_done / elapsed
        point = {
            "step": state.global_step,
            "epoch": state.epoch,
            "train_loss": logs.get("loss"),
            "eval_loss": logs.get("eval_loss"),
            "learning_rate": logs.get("learning_rate"),
            "grad_norm": logs.get("grad_norm"),
            "tokens_per_second": (self.counter.tokens - self.start_tokens) / elapsed,
            "tokens": self.counter.tokens - self.start_tokens,  # trained so far in this process's run
            "progress": min(state.global_step / total, 1.0),
            "eta_seconds": (total - state.global_step) / rate if rate > 0 and not final else 0.0,
        }
        point = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in point.items()}
        if point["train_loss"] is not None:
            self.last_loss = point["train_loss"]
        if self.on_progress:
            self.on_progress(point)

    def check_cancel(self, state, control) -> None:
        if not self.cancelled and _all_agree(bool(self.should_cancel and self.should_cancel())):
            self.cancelled = True
            control.should_training_stop = True
            self.say(f"cancelled at step {state.global_step}")

    def as_callback(self, base):
        progress = self

        class Callback(base):
            def on_train_begin(self, args, state, control, **kw):
                progress.started, progress.start_step = time.monotonic(), state.global_step
                progress.start_tokens = progress.counter.tokens

            def on_log(self, args, state, control, logs=None, **kw):
                logs = logs or {}
                if "loss" in logs or "eval_loss" in logs:
                    progress.report(state, logs)
                    progress.check_cancel(state, control)  # again once the step is visible as reported

            def on_step_end(self, args, state, control, **kw):
                progress.check_cancel(state, control)

            def on_save(self, args, state, control, **kw):
                path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                if path.exists() and state.is_world_process_zero:
                    (path / COMPLETE).write_text(str(state.global_step))
                    progress.say(f"checkpoint {state.global_step} saved")

        return Callback()


def _all_agree(flag: bool) -> bool:
    """`flag` on any of the job's processes (all of them take part, at the same step); just `flag` alone."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    import torch

    value = torch.tensor([int(flag)], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def _save(cfg, trainer, tokenizer, out_dir: Path, metrics: dict, card: dict) -> Path:
    adapter_dir = out_dir / "adapter"
    trainer.model.save_pretrained(adapter_dir)
    tokenizer.save_pretrained(adapter_dir)
    (adapter_dir / "run_config.json").write_text(cfg.to_json())
    (adapter_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (adapter_dir / "README.md").write_text(model_card(cfg, metrics, card))
    return adapter_dir


def model_card(cfg: FinetuneConfig, metrics: dict, card: dict) -> str:
    """README.md of the adapter. The base model is named by its display name and Hugging Face id
    (card["base_name"], card["base_hub_id"]), never by the folder it was loaded from on the worker."""
    datanets = card.get("datanets", [])
    hub_id = card.get("base_hub_id", "" if cfg.base_model.startswith("/") else cfg.base_model)
    base = card.get("base_name") or hub_id or "a local base model"
    settings = {**cfg.to_dict(), "base_model": hub_id or base}
    named = f"{base} (`{hub_id}` on Hugging Face)" if hub_id and hub_id != base else base
    lines = [
        "---",
        "library_name: peft",
        *([f"base_model: {hub_id}"] if hub_id else []),
        "tags: [modelfactory, lora]",
        "---",
        f"# {card.get('name', 'ModelFactory adapter')}",
        "",
        f"A {cfg.method.upper()} adapter for {named}, trained with ModelFactory.",
        "",
        "## Data",
        "",
        "| Datanet | version | records | Merkle root |",
        "| --- | --- | --- | --- |",
        *[f"| {d['name']} | v{d['version']} | {d['size']} | `{d['root']}` |" for d in datanets],
        "",
        "## Parameters",
        "",
        "| setting | value |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in sorted(settings.items())],
        "",
        "## Metrics",
        "",
        *[f"- {k}: {round(v, 4) if isinstance(v, float) else v}" for k, v in metrics.items()],
        "",
        "Load it with `PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), this_folder)`.",
        "",
    ]
    return "\n".join(lines)
