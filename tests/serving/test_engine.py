"""The serving engine on a tiny Llama: mixed-adapter batches, LRU eviction that frees
memory, streaming with stops, seeds and limits."""

from __future__ import annotations

import gc
import weakref

import pytest

from serving.engine import AdapterError, GenerationError, GenerationParams, Request, ServingEngine

GREEDY = GenerationParams(max_tokens=12, temperature=0)
HELLO = [{"role": "user", "content": "What is LoRA?"}]


def text_of(engine, requests) -> dict[str, str]:
    out: dict[str, str] = {r.id: "" for r in requests}
    for event in engine.stream(requests):
        out[event.request_id] += event.text
    return out


def test_a_mixed_batch_gives_each_row_what_its_adapter_gives_alone(serving_base, make_adapters):
    a, b = make_adapters(2)
    engine = ServingEngine(serving_base)
    reqs = [
        Request("a", HELLO, "a", a, GREEDY),
        Request("b", HELLO, "b", b, GREEDY),
        Request("base", HELLO, None, None, GREEDY),
    ]
    together = text_of(engine, reqs)
    alone = {r.id: text_of(engine, [r])[r.id] for r in reqs}
    assert together == alone
    assert len(set(together.values())) == 3  # the adapters really change the answer


def test_the_bank_gives_what_peft_gives(serving_base, make_adapters):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    (a,) = make_adapters(1)
    engine = ServingEngine(serving_base)
    ours = text_of(engine, [Request("a", HELLO, "a", a, GREEDY)])["a"]
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(serving_base), a).eval()
    ids = engine.tokenizer.apply_chat_template(HELLO, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    expected = engine.tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert ours == expected


def test_lru_eviction_by_count_and_bytes_really_frees_the_tensors(serving_base, make_adapters):
    folders = make_adapters(3)
    engine = ServingEngine(serving_base, max_adapters=2)
    engine.cache.ensure("x0", folders[0])
    engine.cache.ensure("x1", folders[1])
    layer = next(iter(engine.cache.bank.layers.values()))
    slot0, slot1 = engine.cache.slot_of("x0"), engine.cache.slot_of("x1")
    ref = weakref.ref(layer.a[slot0])
    engine.cache.ensure("x0", folders[0])  # a hit makes x0 the most recent, so x1 goes next
    engine.cache.ensure("x2", folders[2])
    assert list(engine.cache.resident) == ["x0", "x2"]
    assert all(slot1 not in layer.a for layer in engine.cache.bank.layers.values())
    one = engine.cache.resident["x0"].nbytes
    engine.cache.evict("x0")
    gc.collect()
    assert ref() is None  # the evicted adapter's tensors are freed, not just forgotten
    assert engine.cache.resident_bytes == engine.cache.resident["x2"].nbytes
    budget = ServingEngine(serving_base, max_adapters=10, max_adapter_bytes=one + 1)
    budget.cache.ensure("y0", folders[0])
    budget.cache.ensure("y1", folders[1])
    assert list(budget.cache.resident) == ["y1"] and budget.cache.evictions == 1
    m = engine.metrics()
    assert (m["hits"], m["misses"], m["evictions"]) == (1, 3, 2)


def test_adapters_in_the_running_batch_are_never_evicted(serving_base, make_adapters):
    """Room for one adapter: the second request waits for the first to finish, then its adapter loads."""
    folders = make_adapters(3)
    engine = ServingEngine(serving_base, max_adapters=1)
    order = [e.request_id for e in engine.stream(
        [Request("p", HELLO, "p0", folders[0], GREEDY), Request("q", HELLO, "p1", folders[1], GREEDY)])]  # fmt: skip
    assert "q" in order and order.index("q") > max(i for i, rid in enumerate(order) if rid == "p")
    assert engine.cache.evictions == 1 and list(engine.cache.resident) == ["p1"]


def test_streaming_limits_stops_and_seeds(serving_base):
    engine = ServingEngine(serving_base)
    events = list(engine.stream([Request("r", HELLO, params=GenerationParams(max_tokens=6, temperature=0))]))
    assert events[-1].finish_reason in ("length", "stop") and events[-1].completion_tokens <= 6
    assert all(e.finish_reason is None for e in events[:-1])
    full = "".join(e.text for e in events)
    if len(full) > 3:
        stop = full[2:4]
        cut = "".join(e.text for e in engine.stream([Request("s", HELLO, params=GenerationParams(
            max_tokens=6, temperature=0, stop=[stop]))]))  # fmt: skip
        assert cut == full[: full.find(stop)]
    sampled = GenerationParams(max_tokens=8, temperature=1.0, top_p=0.9, seed=7)
    first = text_of(engine, [Request("x", HELLO, params=sampled)])["x"]
    assert text_of(engine, [Request("x", HELLO, params=sampled)])["x"] == first


@pytest.mark.parametrize(
    "kwargs, text",
    [({"max_tokens": 0}, "max_tokens"), ({"temperature": 3}, "temperature"), ({"top_p": 0}, "top_p"),
     ({"stop": [""]}, "stop")],
)  # fmt: skip
def test_invalid_parameters_are_refused(kwargs, text):
    with pytest.raises(GenerationError, match=text):
        GenerationParams(**kwargs)


def test_a_prompt_over_the_context_is_refused(serving_base):
    engine = ServingEngine(serving_base)
    huge = [{"role": "user", "content": "word " * 3000}]
    with pytest.raises(GenerationError, match="context of 1024 tokens"):
        list(engine.stream([Request("big", huge)]))


def test_a_missing_adapter_folder_is_a_clear_error(serving_base, tmp_path):
    engine = ServingEngine(serving_base)
    with pytest.raises(AdapterError, match="adapter_config.json missing"):
        list(engine.stream([Request("m", HELLO, "ghost", str(tmp_path), GREEDY)]))


def test_a_cancelled_request_stops_at_the_next_token(serving_base):
    engine = ServingEngine(serving_base)
    seen = []

    def cancelled(request_id):
        return len(seen) >= 2

    long = GenerationParams(max_tokens=200, temperature=0)
    for event in engine.stream([Request("c", HELLO, params=long), Request("d", HELLO, params=GREEDY)], cancelled):
        if event.request_id == "c":
            seen.append(event)
    assert seen[-1].finish_reason in ("cancelled", "stop") and len(seen) <= 3
