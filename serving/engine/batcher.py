"""Continuous batching for the built-in engine: requests join and leave the running decode loop
between steps, as in vLLM and TGI, so nobody waits for someone else's batch to finish.

One `step()` (1) drops cancelled rows, (2) gives every running row its next token in one batched
forward over the shared KV cache, and (3) admits waiting requests: their prompts are prefilled
together, each gets its first token, and their caches join the running one (left-padded to a common
length, so every row keeps its own positions). Finished rows leave the cache at once and leading
columns nobody needs any more are trimmed.

Admission is fair between people: waiting requests are taken one per person in turn, people with
fewer running answers first, so one person's queue never delays another's first token by more than
the step already running: in a full batch, the latest answer of whoever runs the most steps back for
a newcomer and resumes later, unchanged. The batch is bounded by memory — each row reserves
KV cache for its prompt plus its `max_tokens` — and by `max_batch`.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from serving.engine.adapters import AdapterBusy, AdapterError
from serving.engine.detok import Detokenizer

log = logging.getLogger("serving.engine")
PREFILL_TOKENS = 8192  # prompt tokens prefilled in one step at most (one always goes in), so joins stay short


@dataclass
class Row:
    request: object  # engine.Request
    user: str
    prompt: list[int]
    detok: Detokenizer
    generator: object
    slot: int = 0
    produced: list[int] = field(default_factory=list)
    decoded: str = ""  # all text of the produced tokens
    given: str = ""  # text given out so far (a tail that may become a stop sequence waits)
    next: int | None = None  # the sampled token the next forward feeds
    done: bool = False

    @property
    def reserve(self) -> int:  # KV cache tokens this row may reach
        return len(self.prompt) + self.request.params.max_tokens

    @property
    def context(self) -> list[int]:
        """What a prefill reads: the prompt, plus the tokens already fed if the row was preempted."""
        return self.prompt + self.produced[:-1]


class Batcher:
    def __init__(self, engine, max_batch: int, kv_cache_bytes: int, on_admit: Callable | None = None):
        self.engine = engine
        self.max_batch, self.kv_cache_bytes = max_batch, kv_cache_bytes
        self.waiting: list[Row] = []
        self.running: list[Row] = []
        self.past = self.mask = None  # the running rows' KV cache and attention mask (B, T)
        self.cancelled: set[str] = set()
        self.joinable = True  # False for caches that cannot be padded and joined (sliding windows)
        self.on_admit = on_admit or (lambda rows, waiting: None)

    @property
    def busy(self) -> bool:
        return bool(self.waiting or self.running)

    def submit(self, request, user: str = "") -> None:
        """Queue a request; GenerationError if it cannot fit the model's context."""
        prompt = self.engine.check(request)
        generator = self.engine.generator(request.params.seed)
        self.waiting.append(Row(request, str(user), prompt, Detokenizer(self.engine.tokenizer), generator))

    def cancel(self, request_id: str) -> None:
        self.cancelled.add(request_id)

    def step(self) -> list:
        """One decode step for the running rows plus the admission of waiting ones; the events it made."""
        events = self._cancel()
        self._leave()
        if self.running:
            events += self._decode()
        admitted, refused = self._admit()
        events += refused
        if admitted:
            events += self._prefill(admitted)
        self._leave()
        return events

    # --- admission ---------------------------------------------------------------------

    def _cancel(self) -> list:
        events = []
        for row in self.running + self.waiting:
            if row.request.id in self.cancelled:
                row.done = True
                events.append(self._event(row, "", "cancelled"))
        self.waiting = [r for r in self.waiting if not r.done]
        self.cancelled.clear()
        return events

    def fair_order(self) -> list[Row]:
        """Waiting rows, one per person in turn; people with fewer running rows, then earlier, first."""
        running = {}
        for r in self.running:
            running[r.user] = running.get(r.user, 0) + 1
        queues: dict[str, list[Row]] = {}
        for r in self.waiting:
            queues.setdefault(r.user, []).append(r)
        people = sorted(queues, key=lambda u: running.get(u, 0))  # stable: first arrival breaks ties
        order, depth = [], 0
        while len(order) < len(self.waiting):
            order += [queues[u][depth] for u in people if depth < len(queues[u])]
            depth += 1
        return order

    def _fits(self, rows: list[Row]) -> bool:
        kv_bytes = len(rows) * max(r.reserve for r in rows) * self.engine.kv_bytes_per_token
        return len(rows) <= self.max_batch and kv_bytes <= self.kv_cache_bytes

    def _admit(self) -> tuple[list[Row], list]:
        if not self.waiting or (self.running and not self.joinable):
            return [], []
        self._make_room_for_newcomers()
        admitted, refused, prefill = [], [], 0
        adapters = {r.request.adapter for r in self.running if r.request.adapter}
        for row in self.fair_order():
            if (self.running or admitted) and not self._fits(self.running + admitted + [row]):
                break  # in turn: a later, smaller request does not jump the queue (alone, any request runs)
            if admitted and prefill + len(row.context) > PREFILL_TOKENS:
                break
            try:
                row.slot = self._adapter_slot(row, adapters | {r.request.adapter for r in admitted})
            except AdapterBusy as exc:
                if self.running or admitted:
                    continue  # its adapter loads once a running one is free
                row.done = True
                refused.append(self._event(row, "", "error", error=exc))
                continue
            except AdapterError as exc:
                row.done = True
                refused.append(self._event(row, "", "error", error=exc))
                continue
            admitted.append(row)
            prefill += len(row.context)
        taken = {id(r) for r in admitted} | {id(r) for r in self.waiting if r.done}
        if admitted:
            self.on_admit(admitted, len(self.waiting))
        self.waiting = [r for r in self.waiting if id(r) not in taken]
        return admitted, refused

    def _make_room_for_newcomers(self) -> None:
        """Someone with nothing running gets a row now, even in a full batch: the latest row of whoever runs
        the most answers (two or more) steps back to the front of the queue. Its tokens are kept and
        recomputed when it rejoins (vLLM's recompute preemption), so its answer is unchanged."""
        running = Counter(r.user for r in self.running)
        for user in dict.fromkeys(r.user for r in self.waiting):
            if running[user]:
                continue
            newcomer = next(r for r in self.waiting if r.user == user)
            while self.running and not self._fits(self.running + [newcomer]):
                top, count = running.most_common(1)[0]
                if count < 2:
                    return
                victim = next(r for r in reversed(self.running) if r.user == top)
                self._keep([i for i, r in enumerate(self.running) if r is not victim])
                self.waiting.insert(0, victim)
                running[top] -= 1
                log.info("paused one answer of %s to start one of %s", top, user)
            running[user] += 1

    def _adapter_slot(self, row: Row, pinned: set) -> int:
        r = row.request
        if not r.adapter:
            return self.engine.cache.slot_of(None)
        if not r.adapter_path:
            raise AdapterError(f"No stored adapter for {r.adapter!r}.")
        return self.engine.cache.ensure(r.adapter, r.adapter_path, pinned=pinned | {r.adapter}).slot

    # --- forward passes ----------------------------------------------------------------

    def _prefill(self, rows: list[Row]) -> list:
        import torch

        engine, device = self.engine, self.engine.device
        contexts = [r.context for r in rows]
        fresh = [i for i, r in enumerate(rows) if not r.produced]  # resumed rows already hold their next token
        width = max(len(c) for c in contexts)
        pad = engine.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(c)) + c for c in contexts], device=device)
        mask = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in contexts], device=device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits, past = self._forward(rows, ids, mask, positions, None)
        self._join(rows, past, mask)
        return self._sample_all([rows[i] for i in fresh], logits[fresh]) if fresh else []

    def _decode(self) -> list:
        import torch

        device = self.engine.device
        step_input = torch.tensor([[r.next] for r in self.running], device=device)
        self.mask = torch.cat([self.mask, torch.ones((len(self.running), 1), dtype=self.mask.dtype, device=device)], 1)
        positions = (self.mask.cumsum(-1) - 1)[:, -1:]
        logits, self.past = self._forward(self.running, step_input, self.mask, positions, self.past)
        return self._sample_all(self.running, logits)

    def _forward(self, rows, ids, mask, positions, past):
        import torch

        engine = self.engine
        started = time.perf_counter()
        engine.cache.bank.set_rows([r.slot for r in rows])
        try:
            with torch.no_grad():
                out = engine.cache.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                                         past_key_values=past, use_cache=True, logits_to_keep=1)  # fmt: skip
        finally:
            engine.cache.bank.set_rows(None)
            engine.busy_seconds += time.perf_counter() - started
        return out.logits[:, -1, :].float(), out.past_key_values

    def _join(self, rows: list[Row], past, mask) -> None:
        """Add prefilled rows (their cache `past`, mask `mask`) to the running batch."""
        import torch
        import torch.nn.functional as F
        from transformers.cache_utils import DynamicLayer

        self.joinable = all(type(layer) is DynamicLayer for layer in past.layers)
        if not self.running:
            self.running, self.past, self.mask = list(rows), past, mask
            return
        width = max(self.mask.shape[1], mask.shape[1])

        def left_pad(t, n):  # pad the sequence dimension (-2 for K/V, -1 for masks) on the left
            return t if n == 0 else F.pad(t, (0, 0, n, 0) if t.dim() == 4 else (n, 0))

        old, new = width - self.mask.shape[1], width - mask.shape[1]
        for mine, theirs in zip(self.past.layers, past.layers, strict=True):
            mine.keys = torch.cat([left_pad(mine.keys, old), left_pad(theirs.keys, new)])
            mine.values = torch.cat([left_pad(mine.values, old), left_pad(theirs.values, new)])
        self.mask = torch.cat([left_pad(self.mask, old), left_pad(mask, new)])
        self.running += rows

    def _leave(self) -> None:
        """Finished rows leave the batch and its cache."""
        self._keep([i for i, r in enumerate(self.running) if not r.done])

    def _keep(self, keep: list[int]) -> None:
        """Only these running rows stay, in the batch and its cache; columns only the others needed go too."""
        if len(keep) == len(self.running):
            return
        if not keep:
            self.running, self.past, self.mask = [], None, None
            return
        import torch

        index = torch.tensor(keep, device=self.mask.device)
        self.mask = self.mask[index]
        first = int(self.mask.any(0).int().argmax())  # leading columns that are padding in every row
        self.mask = self.mask[:, first:]
        for layer in self.past.layers:
            layer.keys = layer.keys[index, :, first:]
            layer.values = layer.values[index, :, first:]
        self.running = [self.running[i] for i in keep]

    # --- tokens to text ----------------------------------------------------------------

    def _sample_all(self, rows: list[Row], logits) -> list:
        engine = self.engine
        if all(r.request.params.temperature == 0 for r in rows):
            tokens = logits.argmax(-1).tolist()
        else:
            tokens = [engine.sample(logits[i], r.request.params, r.generator) for i, r in enumerate(rows)]
        events = []
        for row, token in zip(rows, tokens, strict=True):
            event = self._take(row, token)
            if event is not None:
                events.append(event)
        return events

    def _take(self, row: Row, token: int):
        """Add one sampled token to `row`: the event it makes, if any."""
        engine, params = self.engine, row.request.params
        if token in engine.eos:
            row.done = True
            return self._event(row, "", "stop")
        row.produced.append(token)
        row.next = token
        engine.tokens_out += 1
        row.decoded += row.detok.add(token, final=len(row.produced) >= params.max_tokens)
        new, finish = engine.apply_stop(row.decoded, row.given, params.stop)
        row.given = row.decoded if finish is None else row.given + new
        if finish is None and len(row.produced) >= params.max_tokens:
            finish = "length"
        row.done = finish is not None
        return self._event(row, new, finish) if new or finish else None

    @staticmethod
    def _event(row: Row, text: str, finish: str | None, error: Exception | None = None):
        from serving.engine.engine import Event

        return Event(row.request.id, text, finish, len(row.prompt), len(row.produced), error=error)
