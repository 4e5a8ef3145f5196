"""Web side of serving: validate a chat request, hand it to a serving worker,
stream its events back. Async, for daphne; never imports torch."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from core import rpc
from serving.engine.engine import GenerationError, GenerationParams
from serving.registry import ModelRef

LINE = rpc.Line(prefix="serving", requests="serving:requests")
FIRST_EVENT_TIMEOUT = 120.0  # a cold base model load on a GPU host can take a while
EVENT_TIMEOUT = 60.0
MAX_MESSAGES = 200
MAX_CHARS = 200_000
ROLES = {"system", "user", "assistant"}
ServingUnavailable = rpc.WorkerUnavailable


@dataclass
class ChatRequest:
    model: ModelRef
    messages: list[dict]
    params: GenerationParams

    @property
    def payload(self) -> dict:
        return {
            "base": self.model.base_source,
            "adapter": self.model.id if self.model.adapter_path else None,
            "adapter_path": self.model.adapter_path,
            "messages": self.messages,
            "params": {
                "max_tokens": self.params.max_tokens,
                "temperature": self.params.temperature,
                "top_p": self.params.top_p,
                "stop": self.params.stop,
                "seed": self.params.seed,
            },  # fmt: skip
        }


def check_messages(messages) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise GenerationError("`messages` must be a non-empty list.")
    if len(messages) > MAX_MESSAGES:
        raise GenerationError(f"At most {MAX_MESSAGES} messages.")
    out, total = [], 0
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise GenerationError(f"messages[{i}] needs a role (system, user or assistant) and text content.")
        total += len(m["content"])
        out.append({"role": m["role"], "content": m["content"]})
    if total > MAX_CHARS:
        raise GenerationError(f"The messages are longer than {MAX_CHARS:,} characters.")
    return out


def params_from(data: dict) -> GenerationParams:
    if not isinstance(data, dict):
        raise GenerationError("Generation parameters must be a JSON object.")
    stop = data.get("stop") or []
    if isinstance(stop, str):
        stop = [stop]
    try:
        return GenerationParams(
            max_tokens=int(data.get("max_tokens") or data.get("max_completion_tokens") or 128),
            temperature=float(data.get("temperature", 0.7) if data.get("temperature") is not None else 0.7),
            top_p=float(data.get("top_p", 1.0) if data.get("top_p") is not None else 1.0),
            stop=list(stop) if isinstance(stop, list) else stop,
            seed=int(data["seed"]) if data.get("seed") is not None else None,
        )
    except (TypeError, ValueError) as exc:
        raise GenerationError(f"Invalid generation parameter: {exc}") from None


def stream(request: ChatRequest, user_id) -> AsyncIterator[dict]:
    """Events for one request: {"type": "token"|"done"|"error", ...}. Cancels the request
    on the worker if the caller stops iterating (a client that went away). `user_id` lets the
    worker share its batches fairly between people."""
    missing = "No model server answered in time; try again shortly."
    return rpc.stream(LINE, {**request.payload, "user": str(user_id)}, FIRST_EVENT_TIMEOUT, EVENT_TIMEOUT, missing)
