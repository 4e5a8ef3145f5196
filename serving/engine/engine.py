"""ServingEngine: one resident base model, many adapters, streaming generation.

Requests for different adapters share a batch: each row picks its adapter's
slot in the bank (serving/engine/adapters.py), the base model's rows pick none.
The decode loop is ours (serving/engine/batcher.py: continuous batching) so each
row keeps its own sampling settings, seed, stop sequences and token budget, rows
join and leave between steps, and tokens stream out as they are produced.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from serving.engine.adapters import AdapterCache


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
    finish_reason: str | None = None  # "stop", "length", "cancelled" or "error" on the last event
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: Exception | None = None  # why, when finish_reason is "error"
    status: str | None = None  # "loading" while a base model loads for this request


def prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    if hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return list(ids)


def check_fits(tokenizer, request: Request, context_length: int) -> list[int]:
    """The request's prompt ids; GenerationError, in plain words, if it and its answer exceed the context."""
    ids = prompt_ids(tokenizer, request.messages)
    if len(ids) + request.params.max_tokens > context_length:
        room = context_length - len(ids)
        advice = (f"Lower “Max tokens” to {room:,} or less, or start a new conversation." if room > 0
                  else "Start a new conversation or ask a shorter question.")  # fmt: skip
        raise GenerationError(
            f"The conversation ({len(ids):,} tokens) and an answer of up to {request.params.max_tokens:,} tokens "
            f"do not fit: this model reads a context of {context_length} tokens at most. {advice}"
        )
    return ids


class ServingEngine:
    def __init__(self, base: str, max_adapters: int = 16, max_adapter_bytes: int = 2 << 30, device: str | None = None,
                 max_batch: int = 256, kv_cache_bytes: int | None = None):  # fmt: skip
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
        self.lock = threading.Lock()  # one batcher steps this model at a time
        configured = getattr(model.generation_config, "eos_token_id", None)
        self.eos = {self.tokenizer.eos_token_id} | set(configured if isinstance(configured, list) else [configured])
        self.kv_bytes_per_token = kv_bytes_per_token(model.config, dtype)
        self.kv_cache_bytes = kv_cache_bytes or default_kv_cache_bytes(self.device)
        self.max_batch = max_batch
        self.tokens_out = 0
        self.busy_seconds = 0.0

    # --- prompts -----------------------------------------------------------------------

    def check(self, request: Request) -> list[int]:
        return check_fits(self.tokenizer, request, self.context_length)

    # --- generation --------------------------------------------------------------------

    def batcher(self, max_batch: int | None = None, on_admit=None):
        """A continuous batcher on this model (serving/engine/batcher.py); one runs at a time."""
        from serving.engine.batcher import Batcher

        return Batcher(self, max_batch or self.max_batch, self.kv_cache_bytes, on_admit)

    def stream(self, requests: list[Request], cancelled=lambda request_id: False) -> Iterator[Event]:
        """Generate for `requests` (any mix of adapters), all admitted at once where memory allows;
        yields text as it is decoded. Raises the first request's error (GenerationError, AdapterError)."""
        batcher = self.batcher(max_batch=len(requests))
        for r in requests:
            batcher.submit(r)
        with self.lock:
            while batcher.busy:
                for r in requests:
                    if cancelled(r.id):
                        batcher.cancel(r.id)
                for event in batcher.step():
                    if event.error is not None:
                        raise event.error
                    yield event

    @staticmethod
    def apply_stop(text: str, previous: str, stops: list[str]) -> tuple[str, str | None]:
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
    def generator(seed):
        import torch

        g = torch.Generator()
        g.manual_seed(seed if seed is not None else int(time.time_ns() % (2**31)))
        return g

    @staticmethod
    def sample(logits, params: GenerationParams, generator) -> int:
        import torch

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
            "kv_cache_bytes": self.kv_cache_bytes,
        }


def kv_bytes_per_token(config, dtype) -> int:
    """KV cache bytes one token takes in one row: keys and values of every layer."""
    text = getattr(config, "text_config", None) or config
    heads = text.num_attention_heads
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    return 2 * text.num_hidden_layers * kv_heads * head_dim * dtype.itemsize


def default_kv_cache_bytes(device: str) -> int:
    """Memory the batch's KV cache may use: 80% of the GPU's free memory after the model loaded, or a
    quarter of the host's available memory (at most 8 GiB) on CPU."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.mem_get_info()[0] * 0.8)
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
        return min(info["MemAvailable"] // 4, 8 << 30)
    except (OSError, KeyError, ValueError):
        return 1 << 30
