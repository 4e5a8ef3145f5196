"""The built-in demo base model: a small Llama pre-trained on this machine.

A random model cannot show what fine-tuning does, and nothing may be downloaded,
so the demo model is made here: the project's tokenizer (byte-level BPE, see
`tiny.train_tokenizer`) trained on the demo Datanet's records, then a ~3M-parameter
Llama trained on every token of those records in the chat template. It then
answers the glossary's questions in words, and a Quick LoRA job can teach it a new
fact. A small vocabulary (512) keeps unseen words made of pieces the model has
learnt to write, which is what lets an adapter teach it a new name.

Plain Python + torch, no Django. The folder is an ordinary Hugging Face folder;
`demo_model.json` beside the weights records the recipe it was built from, so a
folder built from another recipe or other records is rebuilt, never reused.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from training.engine import data as data_mod
from training.engine.tiny import CHAT_TEMPLATE, llama_config, record_texts, save_model, train_tokenizer

MARKER = "demo_model.json"
RECIPE = {
    "version": 1,
    "vocab_size": 512,
    "hidden": 256,
    "intermediate": 688,
    "layers": 4,
    "heads": 4,
    "steps": 400,
    "batch_size": 16,
    "learning_rate": 3e-3,
    "warmup_steps": 20,
    "weight_decay": 0.01,
    "max_len": 256,
    "seed": 0,
}

Progress = Callable[[int, int, float, float], None]  # (step, steps, loss, seconds so far)


def recipe_key(records: list[dict]) -> str:
    """What the folder's weights depend on: the recipe, the records and the chat template."""
    blob = json.dumps([RECIPE, CHAT_TEMPLATE, records], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def cached(folder: str | Path, records: list[dict]) -> dict | None:
    """The build report of a finished folder made from this recipe and these records; None otherwise."""
    folder = Path(folder)
    try:
        report = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    complete = (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    return report if complete and report.get("key") == recipe_key(records) else None


def ensure_demo_model(folder: str | Path, records: list[dict], on_progress: Progress | None = None) -> dict:
    """The cached build report, or a fresh build (about two minutes on two CPU cores)."""
    return cached(folder, records) or build_demo_model(folder, records, on_progress)


def build_demo_model(folder: str | Path, records: list[dict], on_progress: Progress | None = None) -> dict:
    """Train tokenizer and model, write them to `folder` (replaced whole, never half-written); the report."""
    import torch
    from transformers import LlamaForCausalLM

    folder = Path(folder)
    started = time.monotonic()
    r = RECIPE
    tokenizer = train_tokenizer(record_texts("instruction", records), r["vocab_size"])
    torch.manual_seed(r["seed"])
    config = llama_config(tokenizer, hidden=r["hidden"], layers=r["layers"], heads=r["heads"],
                          intermediate=r["intermediate"])  # fmt: skip
    model = LlamaForCausalLM(config)
    examples = [e for e in (data_mod.encode(tokenizer, "instruction", rec, r["max_len"]) for rec in records) if e]
    losses = pretrain(model, examples, tokenizer.pad_token_id, on_progress)
    report = {
        "key": recipe_key(records), "recipe": RECIPE, "records": len(examples),
        "tokens": sum(len(e.input_ids) for e in examples),
        "parameters": sum(p.numel() for p in model.parameters()),
        "first_loss": losses[0], "final_loss": sum(losses[-20:]) / len(losses[-20:]),
        "answer_loss": answer_loss(model, examples), "seconds": round(time.monotonic() - started, 1),
    }  # fmt: skip
    building = folder.with_name(folder.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    save_model(model, tokenizer, building)
    (building / MARKER).write_text(json.dumps(report, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    building.rename(folder)
    return report


def _batches(examples: list, batch_size: int, rng: random.Random):
    """Endless shuffled batches, each epoch a new order."""
    while True:
        order = list(range(len(examples)))
        rng.shuffle(order)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            yield [examples[i] for i in order[start : start + batch_size]]


def _padded(batch: list, pad_id: int) -> dict:
    """Right-padded ids with the loss on every real token (the prompt too: this is pre-training)."""
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = [e.input_ids + [pad_id] * (width - len(e.input_ids)) for e in batch]
    labels = [e.input_ids + [data_mod.IGNORE] * (width - len(e.input_ids)) for e in batch]
    mask = [[1] * len(e.input_ids) + [0] * (width - len(e.input_ids)) for e in batch]
    return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "attention_mask": torch.tensor(mask)}


def pretrain(model, examples: list, pad_id: int, on_progress: Progress | None = None) -> list[float]:
    """AdamW with linear warm-up and cosine decay over RECIPE["steps"]; the loss of every step."""
    import torch

    r = RECIPE
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=r["learning_rate"], weight_decay=r["weight_decay"], betas=(0.9, 0.95)
    )
    batches = _batches(examples, min(r["batch_size"], len(examples)), random.Random(r["seed"]))
    started, losses = time.monotonic(), []
    model.train()
    for step in range(r["steps"]):
        warm = min(1.0, (step + 1) / r["warmup_steps"])
        for group in optimiser.param_groups:
            group["lr"] = r["learning_rate"] * warm * 0.5 * (1 + math.cos(math.pi * step / r["steps"]))
        loss = model(**_padded(next(batches), pad_id)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)
        losses.append(round(loss.item(), 4))
        if on_progress and ((step + 1) % 25 == 0 or step + 1 == r["steps"]):
            on_progress(step + 1, r["steps"], losses[-1], time.monotonic() - started)
    model.eval()
    return losses


def answer_loss(model, examples: list) -> float:
    """Mean loss on the answers alone (what a chat user sees), over every record."""
    import torch

    total = 0.0
    with torch.no_grad():
        for e in examples:
            total += model(input_ids=torch.tensor([e.input_ids]), labels=torch.tensor([e.labels])).loss.item()
    return round(total / len(examples), 4)
