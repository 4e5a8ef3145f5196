"""Batches sized by tokens (FinetuneConfig.batch_tokens): each stays within its budget, every example
is trained once per epoch, the steps per epoch are known up front, and a run trains with them."""

from __future__ import annotations

import random

import pytest

from training.engine import FinetuneConfig, run_finetune
from training.engine import train as train_mod
from training.engine.batching import TokenBudgetBatchSampler, token_batches


def lengths(n: int = 700, seed: int = 3) -> list[int]:
    rng = random.Random(seed)
    return [int(min(600, max(4, rng.lognormvariate(3.6, 0.9)))) for _ in range(n)]


@pytest.mark.parametrize("row_len", [512, 128, None])  # packed into rows of 512 or 128 tokens, or padded
def test_it_keeps_every_batch_within_the_budget_and_every_example_once(row_len):
    sizes = [min(n, row_len or 600) for n in lengths()]  # the engine cuts examples at the row length
    batches = token_batches(sizes, 512, seed=1, row_len=row_len)
    assert sorted(i for b in batches for i in b) == list(range(len(sizes)))
    for b in batches:
        cost = sum(sizes[i] for i in b) if row_len else len(b) * max(sizes[i] for i in b)
        assert cost <= 512 or len(b) == 1  # only an example longer than the budget goes over, alone
    assert row_len or any(sizes[b[0]] > 512 for b in batches if len(b) == 1)  # the data has such examples
    assert len({len(b) for b in batches}) > 3  # short examples many to a batch, long ones few
    if row_len:  # packed: the rows are nearly full
        assert sum(sizes) / len(batches) > 0.9 * 512


def test_each_epoch_sees_the_same_batches_in_a_new_order():
    sampler = TokenBudgetBatchSampler(lengths(), 1024, seed=7)
    epochs = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        epochs.append(list(sampler))
        assert len(epochs[-1]) == len(sampler)
        assert sorted(i for b in epochs[-1] for i in b) == list(range(700))
    assert epochs[0] != epochs[1] and sorted(map(tuple, epochs[0])) == sorted(map(tuple, epochs[1]))
    sampler.set_epoch(0)
    assert list(sampler) == epochs[0]  # a resumed run finds the same batches in the same order


def test_step_estimates_use_the_mean_length_when_given():
    cfg = FinetuneConfig(base_model="m", batch_tokens=800, batch_size=8, eval_fraction=0)
    assert cfg.steps_per_pass(400) == 50  # no lengths known: batch size examples per step
    assert cfg.steps_per_pass(400, tokens_per_record=100) == 50
    assert cfg.steps_per_pass(400, tokens_per_record=40) == 20  # 20 examples fit in 800 tokens


@pytest.mark.parametrize("packing", [True, False])
def test_a_run_with_token_batches_trains_one_epoch_of_the_real_batches(
    tiny_base, records, tmp_path, monkeypatch, packing
):
    import math

    points, seen = [], []
    cfg = FinetuneConfig(base_model=tiny_base, batch_tokens=300, epochs=1.0, max_steps=0, logging_steps=1,
                         save_steps=0, eval_fraction=0, learning_rate=1e-3, max_seq_len=128,
                         packing=packing)  # fmt: skip

    class Counting(train_mod._TokenCounter):
        def __call__(self, batch):
            seen.append(len(batch))
            return super().__call__(batch)

    monkeypatch.setattr(train_mod, "_TokenCounter", Counting)
    result = run_finetune(cfg, records[:60], tmp_path, on_progress=points.append)
    assert result.status == "succeeded" and sum(seen) == 60  # every example once
    assert result.steps == len(seen) and len(set(seen)) > 1  # one step per token batch, of varying sizes
    train = [p for p in points if p["train_loss"] is not None]
    assert all(math.isfinite(p["train_loss"]) for p in train) and train[-1]["progress"] == 1.0


def test_a_cancelled_run_with_token_batches_resumes_on_the_same_batches(tiny_base, records, tmp_path):
    first, second = [], []
    cfg = FinetuneConfig(base_model=tiny_base, batch_tokens=300, epochs=1.0, max_steps=0, logging_steps=1,
                         save_steps=2, eval_fraction=0, learning_rate=1e-3, max_seq_len=128)  # fmt: skip
    stopped = run_finetune(cfg, records[:60], tmp_path, on_progress=first.append,
                           should_cancel=lambda: len(first) >= 5)  # fmt: skip
    assert stopped.status == "cancelled"
    done = run_finetune(cfg, records[:60], tmp_path, on_progress=second.append)
    steps = [p["step"] for p in first if p["train_loss"] is not None and p["step"] <= 4]
    steps += [p["step"] for p in second if p["train_loss"] is not None]
    assert done.status == "succeeded" and steps == list(range(1, done.steps + 1))  # from checkpoint 4, each once
    assert second[0]["step"] == 5


def test_token_batches_are_dealt_out_to_several_processes(tiny_base, records, tmp_path):
    from training.engine.distributed import launch

    one, two = [], []
    cfg = dict(base_model=tiny_base, batch_tokens=300, epochs=1.0, max_steps=0, logging_steps=1, save_steps=0,
               eval_fraction=0, learning_rate=1e-3, max_seq_len=128)  # fmt: skip
    alone = run_finetune(FinetuneConfig(**cfg), records[:60], tmp_path / "one", on_progress=one.append)
    both = launch(FinetuneConfig(**cfg, processes=2), records[:60], tmp_path / "two", on_progress=two.append)
    assert both.status == "succeeded" and both.steps == -(-alone.steps // 2)  # each step takes a batch per process


def test_quotas_count_what_every_process_and_host_reads():
    from training.quotas import planned_steps, planned_tokens

    base = dict(base_model="m", eval_fraction=0, max_seq_len=100)
    cfg = FinetuneConfig(**base, batch_size=8, max_steps=10)
    assert planned_tokens(cfg, 400) == 10 * 8 * 100
    assert planned_tokens(FinetuneConfig(**base, batch_size=8, max_steps=10, processes=2, hosts=2), 400) == 4 * 8_000
    assert planned_tokens(FinetuneConfig(**base, batch_tokens=4000, max_steps=10), 400) == 10 * 4000  # the budget
    assert planned_tokens(FinetuneConfig(**base, batch_tokens=50, max_steps=10), 400) == 10 * 100  # a lone example
    by_passes = FinetuneConfig(**base, batch_tokens=4000, epochs=2.0, max_steps=0)
    assert planned_tokens(by_passes, 400) == 2 * 400 * 100  # each record once a pass, whatever the batches
    assert planned_steps(FinetuneConfig(**base, batch_size=8, epochs=1.0, max_steps=0, processes=2), 400) == 25
