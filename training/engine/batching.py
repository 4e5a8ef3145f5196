"""Batches sized by tokens, not examples (FinetuneConfig.batch_tokens).

A fixed count of examples per step makes a step of long examples cost many times a step of short ones,
and a batch size that suits the short ones runs out of memory on the long ones. Here each micro-batch
holds as many examples as fit in a token budget (fairseq's `max_tokens`). The examples are shuffled once
(by seed) and taken in buckets of BUCKET examples. With padding-free packing and attention per example
(varlen, the default), each bucket is packed first fit, longest first, into batches of at most the budget
(one row each). With packing into rows under masks, into rows of the sequence length, every budget ÷
length rows a batch. Either way batches are nearly full and cost about the same whatever their examples
(as LLaMA-Factory's neat packing does). With padded batches, each bucket is sorted by length and filled
greedily while batch rows × its longest example stay within the budget, so a batch holds similar
lengths. The batches are fixed for the run (the steps per epoch are known up front and a resumed run
finds the same ones); their order is shuffled again at every epoch. Every example is in exactly one
batch per epoch; one longer than the budget gets a batch of its own.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

BUCKET = 1024  # examples packed or sorted together: full rows and similar lengths, still a shuffled run


def token_batches(lengths: Sequence[int], budget: int, seed: int = 0, row_len: int | None = None) -> list[list[int]]:
    """Indices of `lengths` in batches of at most `budget` tokens: packed into rows of `row_len`
    (padding-free), else counted as rows × the longest example (padded)."""
    order = list(range(len(lengths)))
    random.Random(seed).shuffle(order)
    batches: list[list[int]] = []
    for start in range(0, len(order), BUCKET):
        bucket = order[start : start + BUCKET]
        batches += _packed(bucket, lengths, budget, row_len) if row_len else _padded(bucket, lengths, budget)
    return batches


def _packed(bucket: list[int], lengths: Sequence[int], budget: int, row_len: int) -> list[list[int]]:
    """Rows of at most min(row_len, budget) tokens, first fit longest first; budget ÷ that rows a batch."""
    room_len = min(row_len, budget)
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(bucket, key=lambda i: -lengths[i]):
        at = next((r for r, left in enumerate(room) if left >= lengths[i]), None)
        if at is None:
            rows.append([i])
            room.append(room_len - lengths[i])
        else:
            rows[at].append(i)
            room[at] -= lengths[i]
    per_batch = max(1, budget // room_len)
    return [[i for row in rows[b : b + per_batch] for i in row] for b in range(0, len(rows), per_batch)]


def _padded(bucket: list[int], lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Similar lengths together while rows × the longest stays within the budget."""
    batches: list[list[int]] = []
    batch: list[int] = []
    for i in sorted(bucket, key=lambda i: lengths[i]):
        if batch and (len(batch) + 1) * lengths[i] > budget:
            batches.append(batch)
            batch = []
        batch.append(i)
    return batches + ([batch] if batch else [])


class TokenBudgetBatchSampler:
    """A torch batch sampler over `token_batches`, reshuffling the batches' order at each epoch."""

    def __init__(self, lengths: Sequence[int], budget: int, seed: int = 0, row_len: int | None = None):
        self.batches = token_batches(lengths, budget, seed, row_len)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        order = list(range(len(self.batches)))
        random.Random(self.seed * 1_000_003 + self.epoch).shuffle(order)
        for b in order:
            yield list(self.batches[b])


def examples_per_step(budget: int, tokens_per_example: float) -> float:
    """About how many examples a `budget`-token batch holds, for step estimates before any data is read."""
    return max(1.0, budget / max(tokens_per_example, 1.0))


def trainer_class(base, budget: int, packing: bool, row_len: int | None, seed: int):
    """`base` (a transformers Trainer) whose training batches hold up to `budget` tokens each: packed
    into rows of `row_len`, or (packing with no row length: varlen attention) into one row of `budget`."""
    if packing and not row_len:
        row_len = budget

    class TokenBudgetTrainer(base):
        def get_train_dataloader(self):
            from torch.utils.data import DataLoader

            dataset = self.train_dataset
            lengths = [len(dataset[i]["input_ids"]) for i in range(len(dataset))]
            sampler = TokenBudgetBatchSampler(lengths, budget, seed=seed, row_len=row_len)
            loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=self.data_collator,
                                num_workers=self.args.dataloader_num_workers)  # fmt: skip
            # With several processes, accelerate deals whole batches out in turn (BatchSamplerShard).
            return self.accelerator.prepare(loader)

    return TokenBudgetTrainer
