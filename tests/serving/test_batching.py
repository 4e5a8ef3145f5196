"""Continuous batching in the built-in engine: requests join and leave the running decode loop between
steps, each row's greedy answer is what it gets alone (and what HF+PEFT gives), admission is fair between
people and bounded by memory, and finished rows free their cache."""

from __future__ import annotations

from serving.engine import GenerationParams, Request, ServingEngine

GREEDY = GenerationParams(max_tokens=16, temperature=0)
QUESTIONS = ["What is LoRA?", "Define a gradient.", "What is a tokenizer?", "Explain attention briefly."]


def ask(i: int, adapter=None, path=None, params=GREEDY) -> Request:
    return Request(f"r{i}", [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}], adapter, path, params)


def alone(engine, request) -> str:
    return "".join(e.text for e in engine.stream([request]))


def run(batcher, arrivals: dict[int, list[Request]], user=lambda r: r.id) -> tuple[dict, dict]:
    """Step `batcher` to the end, submitting arrivals[k] before step k: (text by id, step of first token by id)."""
    texts, first, step = {}, {}, 0
    while batcher.busy or any(k >= step for k in arrivals):
        for r in arrivals.get(step, []):
            batcher.submit(r, user(r))
        for e in batcher.step():
            assert e.error is None, e.error
            texts[e.request_id] = texts.get(e.request_id, "") + e.text
            first.setdefault(e.request_id, step)
        step += 1
    return texts, first


def test_requests_that_join_mid_answer_get_what_they_get_alone(serving_base, make_adapters):
    a, b = make_adapters(2)
    engine = ServingEngine(serving_base)
    requests = [ask(0, "a", a), ask(1), ask(2, "b", b), ask(3, "a", a, GenerationParams(max_tokens=5, temperature=0))]
    expected = {r.id: alone(engine, r) for r in requests}
    batcher = engine.batcher()
    admitted = {}  # request id → how many rows were running when it joined
    batcher.on_admit = lambda rows, waiting: admitted.update((r.request.id, len(batcher.running)) for r in rows)
    texts, first = run(batcher, {0: requests[:1], 3: requests[1:3], 7: requests[3:]})
    assert texts == expected
    assert admitted == {"r0": 0, "r1": 1, "r2": 1, "r3": 3}  # each joined the running answers at once
    assert not batcher.running and batcher.past is None  # all left: nothing held


def test_finished_rows_leave_the_cache_and_their_columns_go(serving_base):
    engine = ServingEngine(serving_base)
    batcher = engine.batcher()
    short = ask(0, params=GenerationParams(max_tokens=2, temperature=0))
    longer = Request("long", [{"role": "user", "content": "word " * 60}], params=GenerationParams(max_tokens=3,
                     temperature=0))  # fmt: skip
    late = ask(1, params=GenerationParams(max_tokens=12, temperature=0))
    for r in (short, longer):
        batcher.submit(r)
    batcher.step()
    width = batcher.mask.shape[1]
    batcher.submit(late)
    while len(batcher.running) != 1 or batcher.running[0].request.id != "r1":
        batcher.step()
    row = batcher.running[0]
    assert batcher.mask.shape[1] == len(row.prompt) + len(row.produced) - 1 < width  # the long prompt's columns went
    assert batcher.past.layers[0].keys.shape[0] == 1 and batcher.past.layers[0].keys.shape[2] == batcher.mask.shape[1]


def test_admission_takes_people_in_turn(serving_base):
    engine = ServingEngine(serving_base)
    batcher = engine.batcher(max_batch=3)
    admitted = []
    batcher.on_admit = lambda rows, waiting: admitted.append([r.user for r in rows])
    arrivals = {0: [ask(i) for i in range(6)] + [Request("b0", [{"role": "user", "content": "Hi"}], params=GREEDY)]}
    texts, first = run(batcher, arrivals, user=lambda r: "b" if r.id.startswith("b") else "a")
    assert admitted[0] == ["a", "b", "a"]  # b's one request beside a's first ones, not after all six
    assert first["b0"] == 0 and len(texts) == 7


def test_the_batch_is_bounded_by_kv_cache_memory(serving_base):
    engine = ServingEngine(serving_base)
    reserve = len(engine.check(ask(0))) + GREEDY.max_tokens
    engine.kv_cache_bytes = 2 * reserve * engine.kv_bytes_per_token + 1  # room for two such rows
    batcher = engine.batcher()
    sizes = []
    batcher.on_admit = lambda rows, waiting: sizes.append(len(batcher.running) + len(rows))
    texts, _ = run(batcher, {0: [ask(0) for _ in range(1)] + [Request(f"x{i}", ask(0).messages, params=GREEDY)
                                                                   for i in range(4)]})  # fmt: skip
    assert max(sizes) == 2 and len(texts) == 5
    engine.kv_cache_bytes = 1  # less than one row: a request still runs, alone
    texts, _ = run(engine.batcher(), {0: [ask(1)]})
    assert texts["r1"] == alone(engine, ask(1))


def test_a_cancelled_request_leaves_while_others_go_on(serving_base):
    engine = ServingEngine(serving_base)
    batcher = engine.batcher()
    keep, drop = ask(0), ask(1, params=GenerationParams(max_tokens=200, temperature=0))
    batcher.submit(keep)
    batcher.submit(drop)
    events = batcher.step()
    batcher.cancel("r1")
    events += batcher.step()
    assert events[-1].request_id == "r1" or any(e.finish_reason == "cancelled" for e in events)
    assert [r.request.id for r in batcher.running] in (["r0"], [])  # r1 left at once
    texts, _ = run(batcher, {})
    kept = "".join(e.text for e in events if e.request_id == "r0") + texts.get("r0", "")
    assert kept == alone(engine, keep) and "r1" not in texts


def test_a_newcomer_gets_a_row_in_a_full_batch_and_the_paused_answer_is_unchanged(serving_base, make_adapters):
    (a,) = make_adapters(1)
    engine = ServingEngine(serving_base)
    long = GenerationParams(max_tokens=24, temperature=0)
    sampled = GenerationParams(max_tokens=24, temperature=1.0, top_p=0.9, seed=3)
    mine = [ask(0, "a", a, long), ask(1, params=sampled)]
    theirs = Request("b0", [{"role": "user", "content": "Hi"}], params=GREEDY)
    expected = {r.id: alone(engine, r) for r in mine + [theirs]}
    batcher = engine.batcher(max_batch=2)
    joined = {}
    batcher.on_admit = lambda rows, waiting: joined.update((r.request.id, step[0]) for r in rows)
    step = [0]
    for r in mine:
        batcher.submit(r, "a")
    texts = {}
    while batcher.busy:
        if step[0] == 5:
            batcher.submit(theirs, "b")
        for e in batcher.step():
            texts[e.request_id] = texts.get(e.request_id, "") + e.text
        step[0] += 1
    assert joined["b0"] == 5  # at once, though both rows were taken by a's two answers
    assert joined["r1"] > 5  # a's latest answer stepped back for it, then rejoined
    assert texts == expected  # a's paused answer (sampled, seeded) resumed where it was
