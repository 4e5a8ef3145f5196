"""One side of bench/train_throughput.py, run in a process of its own (so its peak memory is its own):
the engine, HF Trainer + PEFT with padded batches (what a user would write), or TRL's SFTTrainer with
padding_free=True (the stock HF way, which LLaMA-Factory builds on), each in fp32 or in bf16 (the model
loaded in bf16 and the Trainer's bf16=True, as a user writes it and as LLaMA-Factory does). Same model,
adapter (LoRA r=16, alpha 32, dropout 0.05, all projections), data, chat template, answer-only loss and
steps."""

from __future__ import annotations

import resource
import tempfile
import time

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def run_side(side: str, folder: str, rows: list[dict], steps: int, batch: int, max_len: int, **engine) -> dict:
    import torch

    torch.manual_seed(0)
    extra: dict = {}
    start = time.perf_counter()
    if side == "engine":
        from training.engine import FinetuneConfig, run_finetune

        points = []
        cfg = FinetuneConfig(base_model=folder, max_steps=steps, batch_size=batch, max_seq_len=max_len, rank=16,
                             alpha=32, dropout=0.05, save_steps=0, eval_fraction=0, logging_steps=1,
                             warmup_ratio=0, **engine)  # fmt: skip
        run_finetune(cfg, rows, tempfile.mkdtemp(), on_progress=lambda p: points.append((time.perf_counter(), p)))
        extra = _steady(points)
        losses = [p["train_loss"] for _, p in points if p.get("train_loss") is not None]
        # the mean over the run's steps, as the Trainer's training_loss the stock sides report (logging every step)
        tps, loss = points[-1][1]["tokens_per_second"], sum(losses) / len(losses)
    else:
        stock, _, precision = side.partition("_")
        tps, loss = (_padded if stock == "padded" else _trl)(folder, rows, steps, batch, max_len, precision == "bf16")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"tokens_per_second": tps, "wall": time.perf_counter() - start, "peak_rss_mb": peak, "loss": loss,
            **(extra if side == "engine" else {})}  # fmt: skip


def _steady(points: list[tuple[float, dict]]) -> dict:
    """Tokens/s after the first quarter of the steps (compiling, warm-up) and the seconds those took."""
    points = [(t, p) for t, p in points if p.get("train_loss") is not None]
    warm = max(2, len(points) // 4) - 1
    (t0, p0), (t1, p1) = points[warm], points[-1]
    first_s = p0["tokens"] / p0["tokens_per_second"] if p0["tokens_per_second"] else 0.0
    steps = sorted(b[0] - a[0] for a, b in zip(points[warm:], points[warm + 1 :], strict=False))
    return {"steady_tokens_per_second": (p1["tokens"] - p0["tokens"]) / (t1 - t0), "first_steps_s": first_s,
            "steps": len(points), "tokens": p1["tokens"], "warm_steps": warm + 1,
            "step_s_median": steps[len(steps) // 2], "step_s_max": steps[-1]}  # fmt: skip


def _lora(model):
    from peft import LoraConfig, get_peft_model

    model.config.use_cache = False
    return get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, task_type="CAUSAL_LM",
                                            target_modules=TARGETS))  # fmt: skip


def _counting(collator, counted: dict):
    def collate(batch_rows):
        out = collator(batch_rows)
        mask = out.get("attention_mask")
        counted["tokens"] += int(mask.sum()) if mask is not None else int((out["position_ids"] >= 0).sum())
        return out

    return collate


def _load(folder, bf16: bool):
    import torch
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if bf16 else torch.float32
    return _lora(AutoModelForCausalLM.from_pretrained(folder, attn_implementation="sdpa", dtype=dtype))


def _padded(folder, rows, steps, batch, max_len, bf16):
    import torch
    from transformers import AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from training.engine import data as data_mod

    tok = AutoTokenizer.from_pretrained(folder)
    model = _load(folder, bf16)
    feats = []
    for r in rows:
        e = data_mod.encode(tok, "instruction", r, max_len)  # the engine's template and answer-only labels
        if e is not None:
            feats.append({"input_ids": e.input_ids, "attention_mask": [1] * len(e.input_ids), "labels": e.labels})
    counted = {"tokens": 0}
    args = TrainingArguments(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=batch, max_steps=steps,
                             learning_rate=2e-4, report_to="none", save_strategy="no", logging_steps=steps,
                             use_cpu=not torch.cuda.is_available(), disable_tqdm=True, log_level="warning", bf16=bf16)  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=feats,
                      data_collator=_counting(DataCollatorForSeq2Seq(tok, padding=True), counted))  # fmt: skip
    start = time.perf_counter()
    out = trainer.train()
    return counted["tokens"] / (time.perf_counter() - start), out.training_loss


def completion_dataset(tok, rows: list[dict], max_len: int):
    """TRL's input: the rows tokenised and cut at max_len as for the other sides (TRL's padding_free without
    packing takes inputs already truncated), the answer marked by completion_mask."""
    from datasets import Dataset

    from training.engine import data as data_mod

    examples = [e for e in (data_mod.encode(tok, "instruction", r, max_len) for r in rows) if e is not None]
    return Dataset.from_list([{"input_ids": e.input_ids, "completion_mask": [int(x != -100) for x in e.labels]}
                              for e in examples])  # fmt: skip


def _trl(folder, rows, steps, batch, max_len, bf16):
    import torch
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tok = AutoTokenizer.from_pretrained(folder)
    model = _load(folder, bf16)
    data = completion_dataset(tok, rows, max_len)
    args = SFTConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=batch, max_steps=steps,
                     learning_rate=2e-4, report_to="none", save_strategy="no", logging_steps=steps,
                     use_cpu=not torch.cuda.is_available(), disable_tqdm=True, log_level="warning",
                     padding_free=True, max_length=None, completion_only_loss=True, bf16=bf16)  # fmt: skip
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok)
    counted = {"tokens": 0}
    trainer.data_collator = _counting(trainer.data_collator, counted)
    start = time.perf_counter()
    out = trainer.train()
    return counted["tokens"] / (time.perf_counter() - start), out.training_loss
