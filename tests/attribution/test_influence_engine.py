"""Proof of Attribution engines on a tiny model: the split matches training's,
span matching, CountSketch, and the canary: a planted fact is traced back to the
contribution that taught it, by span and by gradient."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from attribution.engine.influence import (
    AnswerScorer,
    CountSketch,
    combine,
    gradient_scores,
    split_records,
    training_influence,
)
from attribution.engine.spans import SpanIndex, span_scores
from datanets.demo_data import demo_records
from tests.attribution.canary import (
    CANARY_A,
    CANARY_ID,
    CANARY_Q,
    CANARY_SETTINGS,
    CONTRIBUTORS,
    canary_records,
    train_canary_run,
)
from training.engine import data as data_mod


def greedy_answer(base: Path, adapter: Path, question: str, max_new_tokens: int = 48) -> str:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(adapter)).eval()
    prompt = tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                     return_tensors="pt", return_dict=True)  # fmt: skip
    out = model.generate(**prompt, max_new_tokens=max_new_tokens, do_sample=False)
    return tok.decode(out[0][prompt["input_ids"].shape[1] :], skip_special_tokens=True)


@pytest.fixture(scope="module")
def canary_run(tmp_path_factory, demo_model_folder) -> Path:
    """A Quick run on the demo model; <run>/base links to the demo model's folder."""
    run = train_canary_run(tmp_path_factory.mktemp("canary") / "run", demo_model_folder)
    (run / "base").symlink_to(demo_model_folder, target_is_directory=True)
    return run


def test_it_reproduces_the_training_split():
    from training.engine.tiny import record_texts, train_tokenizer

    records = demo_records()[:40]
    records[5] = {"instruction": "word " * 80, "input": "", "output": "cut off"}  # dropped: answer truncated away
    tok = train_tokenizer(record_texts("instruction", records), 512)
    for eval_fraction, seed in [(0.1, 42), (0.25, 7), (0.0, 1)]:
        train, evals, _ = data_mod.build(tok, "instruction", records, 48, eval_fraction, seed)
        ours_train, ours_eval, dropped = split_records(tok, "instruction", list(enumerate(records)), 48,
                                                       eval_fraction, seed)  # fmt: skip
        assert [e.input_ids for _, e in ours_train] == [e.input_ids for e in train]
        assert [e.input_ids for _, e in ours_eval] == [e.input_ids for e in evals]
        assert 5 in dropped
        for cid, example in ours_train + ours_eval:  # ids still name their own record
            assert example == data_mod.encode(tok, "instruction", records[cid], 48)


def test_it_finds_maximal_spans_with_offsets_ignoring_case_and_punctuation():
    records = [(7, "Intro. The Zorblax constant is 7741 quibbits, per glimmer!"),
               (8, "Unrelated: the zorblax is odd; constant is 7741 quibbits here."),
               (9, "the zorblax constant")]  # fmt: skip
    index = SpanIndex.build(records, n=4)
    answer = "Well: the ZORBLAX constant is 7741 quibbits per glimmer -- they say."
    matches = index.match(answer)
    assert set(matches) == {7, 8}  # record 9 shares only 3 words: below n
    [span] = matches[7]
    assert span.words == 8
    assert answer[span.answer_start : span.answer_end] == "the ZORBLAX constant is 7741 quibbits per glimmer"
    assert records[0][1][span.record_start : span.record_end] == "The Zorblax constant is 7741 quibbits, per glimmer"
    [short] = matches[8]
    assert answer[short.answer_start : short.answer_end] == "constant is 7741 quibbits" and short.words == 4
    assert records[1][1][short.record_start : short.record_end] == "constant is 7741 quibbits"
    assert index.match(answer, min_words=5).keys() == {7}
    scores = span_scores(matches, answer)
    assert scores[7] == pytest.approx(8 / 11) and scores[8] == pytest.approx(4 / 11)
    assert index.match("nothing in common at all here") == {}


def test_it_reports_each_maximal_span_once_across_repeats():
    index = SpanIndex.build([(1, "a b c d e f. x y a b c d e f g")], n=3)
    [span] = index.match("q a b c d e f g")[1]  # 6 words match at the start, 7 later on: the 6 lie inside
    assert span.words == 7 and (span.answer_start, span.record_start) == (2, 17)


def test_it_saves_and_loads_the_span_index(tmp_path):
    records = [(cid, r["output"]) for cid, r in canary_records()]
    index = SpanIndex.build(records)
    index.save(tmp_path / "spans.idx")
    assert [p.name for p in tmp_path.iterdir()] == ["spans.idx"]  # the name given, nothing appended
    loaded = SpanIndex.load(tmp_path / "spans.idx")
    assert len(loaded) == len(records) and loaded.n == 4
    for answer in [CANARY_A, "LoRA is a fine-tuning method that freezes the base model, they said."]:
        assert loaded.match(answer) == index.match(answer) != {}


def test_it_sketches_gradients_preserving_inner_products_deterministically():
    import torch

    gen = torch.Generator().manual_seed(0)
    sizes = [("a", 3000), ("b", 5000)]
    x = torch.randn(200, 8000, generator=gen)  # (N, P)
    y = torch.linspace(-1, 1, 200)[:, None] * x + torch.randn(200, 8000, generator=gen)  # all correlations
    sketch = CountSketch(sizes, 1024, seed=3)
    sx, sy = (sketch.project([v[:, :3000], v[:, 3000:]]) for v in (x, y))  # (N, 1024)
    true, approx = (x * y).sum(1), (sx * sy).sum(1)
    assert np.corrcoef(true.numpy(), approx.numpy())[0, 1] > 0.9
    assert (approx - true).abs().mean() < 0.15 * true.abs().mean()  # unbiased, error ~ |x| |y| / sqrt(dim)
    again = CountSketch(sizes, 1024, seed=3).project([x[:, :3000], x[:, 3000:]])
    other = CountSketch(sizes, 1024, seed=4).project([x[:, :3000], x[:, 3000:]])
    assert torch.equal(again, sx) and not torch.equal(other, sx)


def test_it_combines_span_and_gradient_scores():
    grads = gradient_scores(np.array([1.0, 0.0]), {1: [2.0, 0.0], 2: [0.0, 1.0], 3: [-1.0, 0.0], 4: [0.0, 0.0]})
    assert grads == pytest.approx({1: 1.0, 2: 0.0, 3: -1.0, 4: 0.0})
    combined = combine({1: 0.5, 5: 1.0}, grads)
    assert combined == pytest.approx({1: 0.75, 2: 0.0, 3: 0.0, 4: 0.0, 5: 0.5})
    assert combine({}, {}) == {}


def test_it_traces_the_canary_to_its_contributor(canary_run):
    # The Quick preset on the demo model learnt the fact: greedy decoding reproduces it.
    assert greedy_answer(canary_run / "base", canary_run / "adapter", CANARY_Q).startswith(CANARY_A)
    records = canary_records()
    progress = []
    influence = training_influence(str(canary_run / "base"), canary_run, records, **CANARY_SETTINGS,
                                   sketch_dim=512, on_progress=progress.append)  # fmt: skip
    assert influence.method == "tracin-lora"
    assert influence.checkpoints == ["checkpoint-20", "checkpoint-40", "adapter"]
    lrs = influence.learning_rates  # the cosine schedule's rate at each checkpoint (Quick: 2e-3 at its peak)
    assert 0 < lrs[-1] < lrs[1] < lrs[0] < 2e-3 and not influence.notes
    train_ids = {cid for cid, _ in records} - set(influence.eval_ids)
    assert len(influence.eval_ids) == 2 and CANARY_ID in train_ids
    assert influence.scores.keys() == influence.sketches.keys() == train_ids
    assert all(len(s) == 512 for s in influence.sketches.values())
    assert progress[-1] == 1.0 and progress == sorted(progress)

    scorer = AnswerScorer(str(canary_run / "base"), canary_run / "adapter", 512, influence.sketch_seed,
                          CANARY_SETTINGS["max_seq_len"])  # fmt: skip
    grads = gradient_scores(scorer.sketch([{"role": "user", "content": CANARY_Q}], CANARY_A), influence.sketches)
    by_gradient = sorted(grads, key=grads.get, reverse=True)
    assert by_gradient[0] == CANARY_ID  # same question and answer: the closest gradient
    # The same answer asked another way comes next; the third phrasing ("In short, ...") mostly shares
    # words the demo model already wrote, so by gradient alone it may fall behind an ordinary record.
    assert by_gradient[1] == 2 and [CONTRIBUTORS[cid] for cid in by_gradient[:3]].count("A") >= 2
    # A different answer does not point to A: A's records stay at the noise floor (~0.1 here; the canary's own
    # question gives 1.0). Which record tops that noise is not asserted: it moves with the host's number
    # format (an fp32 run on an AVX2-only CPU put A's first, a bf16 one did not).
    other = scorer.sketch([{"role": "user", "content": "What is LoRA?"}], "LoRA is a fine-tuning method.")
    other_grads = gradient_scores(other, influence.sketches)
    assert max(other_grads[cid] for cid, who in CONTRIBUTORS.items() if who == "A") < 0.3
    # and another contributor's fact points to that contributor's record
    theirs = dict(records)[15]
    assert CONTRIBUTORS[15] == "B" and 15 in train_ids
    their_grads = gradient_scores(scorer.sketch([{"role": "user", "content": theirs["instruction"]}], theirs["output"]),
                                  influence.sketches)  # fmt: skip
    assert max(their_grads, key=their_grads.get) == 15

    index = SpanIndex.build([(cid, r["output"]) for cid, r in records])
    matches = index.match(CANARY_A)
    assert CANARY_ID in matches and matches[CANARY_ID][0].words == 8
    assert not any(CONTRIBUTORS[cid] == "B" for cid in matches)
    combined = combine(span_scores(matches, CANARY_A), grads)
    top3 = sorted(combined, key=combined.get, reverse=True)[:3]
    assert {CONTRIBUTORS[cid] for cid in top3} == {"A"}  # spans + gradient: the fact's three records
    assert combined[CANARY_ID] > 0.9


def test_it_scores_against_the_training_loss_without_an_eval_set(canary_run):
    records = canary_records()
    settings = {**CANARY_SETTINGS, "eval_fraction": 0.0}  # as if the job had held nothing out
    influence = training_influence(str(canary_run / "base"), canary_run, records, **settings, sketch_dim=64,
                                   max_checkpoints=2, per_sample="loop")  # fmt: skip
    assert influence.method == "tracin-lora-self" and influence.eval_ids == []
    assert influence.checkpoints == ["checkpoint-40", "adapter"] and influence.per_sample == "loop"
    assert influence.scores.keys() == {cid for cid, _ in records}


def test_it_stops_when_cancelled(canary_run):
    from attribution.engine.influence import InfluenceCancelled

    with pytest.raises(InfluenceCancelled):
        training_influence(str(canary_run / "base"), canary_run, canary_records(), **CANARY_SETTINGS,
                           should_cancel=lambda: True)  # fmt: skip
