"""ServingEngine: one resident base model, many adapters, streaming generation.

Requests for different adapters share a batch: each row picks its adapter's
slot in the bank (serving/engine/adapters.py), the base model's rows pick none.
The decode loop is ours so each row keeps its own sampling settings, seed, stop
sequences and token budget, and tokens stream out as they are produced.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from serving.engine.adapters import AdapterCache, AdapterError
from serving.engine.detok import Detokenizer


class GenerationError(ValueError):
    """A request that cannot be served as asked; the message is for the caller."""


@dataclass
class GenerationParams:
    max_tokens: int = 128
    temperature: float = 0.7
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None

    def __post_init__(self):
        if not 1 <= self.max_tokens <= 4096:
            raise GenerationError("Max tokens (max_tokens) must be between 1 and 4096.")
        if not 0.0 <= self.temperature <= 2.0:
            raise GenerationError("Temperature (temperature) must be between 0 and 2.")
        if not 0.0 < self.top_p <= 1.0:
            raise GenerationError("Top p (top_p) must be above 0 and at most 1.")
        if len(self.stop) > 4 or any(not isinstance(s, str) or not s or len(s) > 100 for s in self.stop):
            raise GenerationError("stop takes up to 4 non-empty strings of at most 100 characters.")


@dataclass
class Request:
    id: str
    messages: list[dict]
    adapter: str | None = None  # adapter name; None for the base model
    adapter_path: str | None = None
    params: GenerationParams = field(default_factory=GenerationParams)


@dataclass
class Event:
    request_id: str
    text: str = ""
    finish_reason: str | None = None  # "stop", "length" or "cancelled" on the last event
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ServingEngine:
    def __init__(self, base: str, max_adapters: int = 16, max_adapter_bytes: int = 2 << 30, device: str | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        self.tokenizer = AutoTokenizer.from_pretrained(base)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype).to(self.device).eval()
        self.context_length = getattr(model.config, "max_position_embeddings", 2048)
        self.cache = AdapterCache(model, max_adapters, max_adapter_bytes)
        self.lock = threading.Lock()  # one batch at a time on this model
        self.tokens_out = 0
        self.busy_seconds = 0.0

    # --- prompts -----------------------------------------------------------------------

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        ids = self.tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
        if hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return list(ids)

    def check(self, request: Request) -> list[int]:
        ids = self.prompt_ids(request.messages)
        if len(ids) + request.params.max_tokens > self.context_length:
            room = self.context_length - len(ids)
            advice = (f"Lower “Max tokens” to {room:,} or less, or start a new conversation." if room > 0
                      else "Start a new conversation or ask a shorter question.")  # fmt: skip
            raise GenerationError(
                f"The conversation ({len(ids):,} tokens) and an answer of up to {request.params.max_tokens:,} tokens "
                f"do not fit: this model reads a context of {self.context_length} tokens at most. {advice}"
            )
        return ids

    # --- generation --------------------------------------------------------------------

    def stream(self, requests: list[Request], cancelled=lambda request_id: False) -> Iterator[Event]:
        """Generate for a batch of requests (any mix of adapters); yields text as it is decoded."""
        import torch

        prompts = [self.check(r) for r in requests]
        with self.lock:
            slots = self._prepare_adapters(requests)
            start = time.perf_counter()
            self.cache.bank.set_rows(slots)
            try:
                yield from self._decode(requests, prompts, cancelled, torch)
            finally:
                self.cache.bank.set_rows(None)
                self.busy_seconds += time.perf_counter() - start

    def _prepare_adapters(self, requests: list[Request]) -> list[int]:
        """The bank slot of each row's adapter, loading missing ones (never evicting this batch's)."""
        wanted = {r.adapter for r in requests if r.adapter}
        for r in requests:
            if r.adapter:
                if not r.adapter_path:
                    raise AdapterError(f"No stored adapter for {r.adapter!r}.")
                self.cache.ensure(r.adapter, r.adapter_path, pinned=wanted)
        return [self.cache.slot_of(r.adapter) for r in requests]

    def _decode(self, requests, prompts, cancelled, torch):
        model, tok = self.cache.model, self.tokenizer
        width = max(len(p) for p in prompts)
        pad = tok.pad_token_id
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=self.device)  # (B, T) left-padded
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        generators = [self._generator(r.params.seed, torch) for r in requests]
        produced = [[] for _ in requests]
        detoks = [Detokenizer(tok) for _ in requests]
        texts = [""] * len(requests)  # given out so far (a tail that may become a stop sequence waits)
        decoded = [""] * len(requests)  # all text of the produced tokens
        done = [False] * len(requests)
        configured = getattr(model.generation_config, "eos_token_id", None)
        eos = {tok.eos_token_id} | set(configured if isinstance(configured, list) else [configured])
        past, step_input = None, ids
        budget = max(r.params.max_tokens for r in requests)
        with torch.no_grad():
            for _ in range(budget):
                positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -step_input.shape[1] :]
                out = model(input_ids=step_input, attention_mask=mask, position_ids=positions,
                            past_key_values=past, use_cache=True)  # fmt: skip
                past = out.past_key_values
                logits = out.logits[:, -1, :].float()  # (B, V)
                next_ids = [
                    self._sample(logits[i], requests[i].params, generators[i], torch) for i in range(len(requests))
                ]
                for i, r in enumerate(requests):
                    if done[i]:
                        continue
                    if cancelled(r.id):
                        done[i] = True
                        yield self._event(r, prompts[i], produced[i], "", "cancelled")
                        continue
                    token = next_ids[i]
                    if token in eos:
                        done[i] = True
                        yield self._event(r, prompts[i], produced[i], "", "stop")
                        continue
                    produced[i].append(token)
                    self.tokens_out += 1
                    decoded[i] += detoks[i].add(token, final=len(produced[i]) >= r.params.max_tokens)
                    text = decoded[i]
                    new, finish = self._apply_stop(text, texts[i], r.params.stop)
                    texts[i] = text if finish is None else texts[i] + new
                    if finish is None and len(produced[i]) >= r.params.max_tokens:
                        finish = "length"
                    if finish:
                        done[i] = True
                    if new or finish:
                        yield self._event(r, prompts[i], produced[i], new, finish)
                if all(done):
                    return
                step_input = torch.tensor([[t] for t in next_ids], device=self.device)
                mask = torch.cat([mask, torch.ones((len(requests), 1), dtype=mask.dtype, device=self.device)], dim=1)

    @staticmethod
    def _apply_stop(text: str, previous: str, stops: list[str]) -> tuple[str, str | None]:
        """(new text to emit, "stop" if a stop sequence appeared)."""
        for stop in stops:
            at = text.find(stop)
            if at != -1:
                return text[len(previous) : at] if at >= len(previous) else "", "stop"
        # Hold back a tail that could still grow into a stop sequence.
        hold = max((len(s) - 1 for s in stops), default=0)
        safe = len(text) - hold if hold else len(text)
        return (text[len(previous) : safe] if safe > len(previous) else ""), None

    @staticmethod
    def _event(r: Request, prompt: list[int], produced: list[int], text: str, finish: str | None) -> Event:
        return Event(r.id, text, finish, len(prompt), len(produced))

    @staticmethod
    def _generator(seed, torch):
        g = torch.Generator()
        g.manual_seed(seed if seed is not None else int(time.time_ns() % (2**31)))
        return g

    @staticmethod
    def _sample(logits, params: GenerationParams, generator, torch) -> int:
        if params.temperature == 0:
            return int(logits.argmax())
        probs = torch.softmax(logits / params.temperature, dim=-1)
        if params.top_p < 1.0:
            sorted_probs, order = probs.sort(descending=True)
            keep = sorted_probs.cumsum(-1) - sorted_probs < params.top_p
            sorted_probs = sorted_probs * keep
            probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
        return int(torch.multinomial(probs.cpu(), 1, generator=generator))

    def metrics(self) -> dict:
        c = self.cache
        loads = sorted(c.load_ms)
        return {
            "resident_adapters": len(c.resident),
            "resident_bytes": c.resident_bytes,
            "hits": c.hits,
            "misses": c.misses,
            "evictions": c.evictions,
            "load_ms_p50": loads[len(loads) // 2] if loads else None,
            "tokens_out": self.tokens_out,
            "tokens_per_second": self.tokens_out / self.busy_seconds if self.busy_seconds else None,
        }
