"""Records → token ids and labels, with the loss only on answer tokens, and the
collators that batch them (padding-free by default).

Plain Python + torch; the tokenizer is any Hugging Face tokenizer. Label -100
marks tokens the loss ignores.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

IGNORE = -100
FALLBACK_TEMPLATE = (
    "{% for m in messages %}### {{ m['role'] | capitalize }}:\n{{ m['content'] }}\n\n{% endfor %}"
    "{% if add_generation_prompt %}### Assistant:\n{% endif %}"
)


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]


def to_messages(schema: str, record: dict) -> list[dict] | None:
    """A record as chat messages, or None for plain text."""
    if schema == "text":
        return None
    if schema == "instruction":
        prompt = record["instruction"] + (f"\n\n{record['input']}" if record.get("input") else "")
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": record["output"]}]
    return list(record["messages"])


def _template_ids(tokenizer, messages, generation_prompt: bool) -> list[int]:
    template = tokenizer.chat_template or FALLBACK_TEMPLATE
    ids = tokenizer.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=generation_prompt, chat_template=template
    )
    if hasattr(ids, "keys"):  # transformers 5 may return a BatchEncoding
        ids = ids["input_ids"]
    return list(ids)


def encode(tokenizer, schema: str, record: dict, max_len: int) -> Example | None:
    """Token ids and labels for one record; None when nothing trainable survives truncation."""
    messages = to_messages(schema, record)
    if messages is None:
        ids = tokenizer(record["text"], add_special_tokens=True)["input_ids"]
        if tokenizer.eos_token_id is not None:
            ids = [*ids, tokenizer.eos_token_id]
        ids = ids[:max_len]
        labels = list(ids)
    else:
        ids = _template_ids(tokenizer, messages, False)
        labels = [IGNORE] * len(ids)
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            start = len(_template_ids(tokenizer, messages[:i], True))
            end = len(_template_ids(tokenizer, messages[: i + 1], False))
            labels[start:end] = ids[start:end]  # the answer and its end-of-turn marker
        ids, labels = ids[:max_len], labels[:max_len]
    if len(ids) < 2 or all(label == IGNORE for label in labels[1:]):
        return None
    return Example(ids, labels)


def build(tokenizer, schema: str, records, max_len: int, eval_fraction: float, seed: int):
    """(train, eval, dropped): examples split deterministically by seed."""
    examples, dropped = [], 0
    for record in records:
        example = encode(tokenizer, schema, record, max_len)
        if example is None:
            dropped += 1
        else:
            examples.append(example)
    random.Random(seed).shuffle(examples)
    n_eval = 0
    if eval_fraction > 0 and len(examples) >= 4:
        n_eval = max(1, round(len(examples) * eval_fraction))
    return examples[n_eval:], examples[:n_eval], dropped


class ExampleDataset:
    """A list of examples the Trainer can index (torch Dataset protocol)."""

    def __init__(self, examples: list[Example]):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict:
        e = self.examples[i]
        return {"input_ids": e.input_ids, "labels": e.labels}


def round_up(n: int, multiple: int) -> int:
    """n rounded up to a multiple of `multiple` (a batch's width: precision.row_multiple)."""
    return -(-n // multiple) * multiple


class PaddingFreeCollator:
    """Pack a batch's examples into rows of at most `row_len` tokens, positions restarting per example.

    Rows are filled first-fit, longest example first (bin packing). With position_ids restarting and no
    attention mask, transformers' attention treats each example as its own sequence (no attention across
    examples, no pad tokens inside a row); the first label of each example is -100 so no token predicts
    across a boundary. Shorter rows end in a pad segment of its own (positions from 0, labels -100).
    Attention costs the sum of rows × row_len², linear in the batch's tokens, where one row of everything
    (row_len=None) costs the square of the batch's total. # (rows, ≤ row_len)

    `multiple` rounds the batch's width up to a multiple of it (the pad segment grows, its tokens not
    counted): on CPU in bf16, oneDNN builds and keeps matrix kernels for each new number of rows, so a
    width that changes with every batch costs a build each time and memory that is never given back
    (precision.row_multiple).
    """

    def __init__(self, row_len: int | None = None, pad_id: int = 0, multiple: int = 1):
        self.row_len, self.pad_id, self.multiple = row_len, pad_id, multiple
        self.tokens = 0  # real tokens of the last batch

    def rows(self, batch: list[dict]) -> list[list[dict]]:
        if not self.row_len:
            return [batch]
        rows: list[list[dict]] = []
        room: list[int] = []
        for item in sorted(batch, key=lambda it: -len(it["input_ids"])):
            n = len(item["input_ids"])
            at = next((i for i, r in enumerate(room) if r >= n), None)
            if at is None:
                rows.append([item])
                room.append(self.row_len - n)
            else:
                rows[at].append(item)
                room[at] -= n
        return rows

    def __call__(self, batch: list[dict]) -> dict:
        import torch

        packed = []
        for row in self.rows(batch):
            ids, labels, positions = [], [], []
            for item in row:
                ids += item["input_ids"]
                labels += [IGNORE, *item["labels"][1:]]
                positions += list(range(len(item["input_ids"])))
            packed.append((ids, labels, positions))
        width = round_up(max(len(ids) for ids, _, _ in packed), self.multiple)
        self.tokens = sum(len(ids) for ids, _, _ in packed)
        pad = [(ids + [self.pad_id] * (width - len(ids)), labels + [IGNORE] * (width - len(ids)),
                positions + list(range(width - len(ids)))) for ids, labels, positions in packed]  # fmt: skip
        return {
            "input_ids": torch.tensor([p[0] for p in pad]),
            "labels": torch.tensor([p[1] for p in pad]),
            "position_ids": torch.tensor([p[2] for p in pad]),
        }


class PaddingCollator:
    """Right-pad to the longest example in the batch (what most scripts do). # (B, T_max)

    `multiple` rounds the width up to a multiple of it (more pad columns, masked out and not counted):
    on CPU in bf16 a new width is new kernels, kept for good (precision.row_multiple)."""

    def __init__(self, pad_id: int, multiple: int = 1):
        self.pad_id, self.multiple = pad_id, multiple

    def __call__(self, batch: list[dict]) -> dict:
        import torch

        width = round_up(max(len(item["input_ids"]) for item in batch), self.multiple)
        ids = [item["input_ids"] + [self.pad_id] * (width - len(item["input_ids"])) for item in batch]
        labels = [item["labels"] + [IGNORE] * (width - len(item["labels"])) for item in batch]
        mask = [[1] * len(item["input_ids"]) + [0] * (width - len(item["input_ids"])) for item in batch]
        return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "attention_mask": torch.tensor(mask)}
