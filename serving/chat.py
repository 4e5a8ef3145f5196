"""One chat turn, one path: validate, choose the records the viewer may read, retrieve,
ground, generate (streamed), store, start answer attribution.

The websocket consumer, the OpenAI-compatible endpoint and the citations endpoint are
doors: they turn their input into these calls and the events back into their own
output. Events are the chat page's websocket messages ({"type": "started" |
"citations" | "status" | "token" | "done" | "error", ...}); "status" says a side now waits
on the model (which may first have to load), so the page can show it before the first token.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings

from attribution import citations, retrieval
from attribution.services import start_answer_attribution
from serving import client, limits
from serving.engine.engine import GenerationError, GenerationParams
from serving.models import Conversation, Message
from serving.registry import ModelRef, base_of

log = logging.getLogger(__name__)
Emit = Callable[[dict], Awaitable[None]]
SYSTEM_PROMPT_CHARS = 8000
WorkerUnavailable = client.ServingUnavailable


# --- Validate and generate (stateless: the OpenAI endpoint uses only these) ----------------


def request_for(model: ModelRef, messages, params: dict) -> client.ChatRequest:
    """A checked generation request; GenerationError says what is wrong in plain words."""
    return client.ChatRequest(model, client.check_messages(messages), client.params_from(params))


async def generate(request: client.ChatRequest, user_id) -> AsyncIterator[dict]:
    """Token events from a serving worker until "done" or "error"; closing it early cancels the work.
    Over the person's CHAT_TOKENS_PER_MINUTE, or with none of their CHAT_MAX_CONCURRENT slots free: one
    "error" (429, with "retry_after"). The worker takes requests fairly across people (user_id)."""
    over = await sync_to_async(limits.tokens_refusal)(user_id)
    if over:
        yield {"type": "error", "message": over[0], "status": 429, "retry_after": over[1]}
        return
    if not await sync_to_async(limits.take_slot)(user_id):
        yield {"type": "error", "message": await sync_to_async(limits.busy_message)(user_id), "status": 429,
               "retry_after": 10}  # fmt: skip
        return
    try:
        async for event in client.stream(request, user_id):
            if event["type"] == "done":
                await sync_to_async(limits.spend_tokens)(user_id, (event.get("usage") or {}).get("total_tokens", 0))
            yield event
    finally:
        await sync_to_async(limits.free_slot)(user_id)


# --- Sources: only Datanets the viewer may read are ever searched ----------------------------


def find_sources(user, model: ModelRef, query: str, k: int) -> list[dict]:
    """Citation items for `query` (synchronous, for the REST endpoint); RetrievalUnavailable if no worker."""
    hits = retrieval.retrieve_sync(query, citations.citable_datanets(user, model.id), k)
    return citations.readable_hits(user, hits, query)


async def sources_for(user, model: ModelRef, query: str, ground: bool) -> dict:
    """{"items", "used" (put into the prompt), "error"} for one question."""
    datanets = await database_sync_to_async(citations.citable_datanets)(user, model.id)
    items, error = [], None
    if datanets:
        try:
            hits = await retrieval.retrieve(query, datanets, settings.CITATIONS_PER_ANSWER)
            items = await database_sync_to_async(citations.readable_hits)(user, hits, query)
        except retrieval.RetrievalUnavailable as exc:
            error = str(exc)
        if not items and error is None and await database_sync_to_async(citations.still_indexing)(datanets):
            error = "The newest records are still being prepared for citing; ask again in a minute."
    elif not model.adapter_path:
        error = "Base models are not trained on a Datanet, so there is nothing to cite."
    return {"items": items, "used": ground and bool(items), "error": error}


# --- A stored turn (the chat page) ---------------------------------------------------------


@dataclass
class Turn:
    user: object
    conversation: Conversation
    question: str
    params: GenerationParams
    ground: bool
    sides: list[tuple[str, ModelRef]]  # ("model", the chosen model) and maybe ("base", its base)

    @property
    def model(self) -> ModelRef:
        return self.sides[0][1]


def open_turn(user, model: ModelRef, message: dict) -> Turn:
    """Check an "ask" message and store the question; GenerationError for anything malformed."""
    question = message.get("content")
    if not isinstance(question, str) or not printable(question).strip():
        raise GenerationError("Type a question first.")
    question = printable(question)
    params = client.params_from(message.get("params") or {})
    conversation = _conversation(user, model, message.get("conversation"), question)
    system = printable(message.get("system")) if isinstance(message.get("system"), str) else None
    if system is not None and system != conversation.system_prompt:
        conversation.system_prompt = system[:SYSTEM_PROMPT_CHARS]
        conversation.save(update_fields=["system_prompt", "updated_at"])
    # The parameters as checked (not the raw message): what the answer was generated with.
    used = {**dataclasses.asdict(params), "stop": [printable(s) for s in params.stop]}
    Message.objects.create(conversation=conversation, role="user", content=question, params=used)
    sides = [("model", model)]
    if message.get("compare") and model.adapter_path:
        base = base_of(user, model)
        if base is not None:
            sides.append(("base", base))
    return Turn(user, conversation, question, params, bool(message.get("ground")), sides)


def _conversation(user, model: ModelRef, conversation_id, question: str) -> Conversation:
    if conversation_id is None:
        return Conversation.objects.create(user=user, model_id=model.id, title=question[:80])
    if (
        isinstance(conversation_id, bool)
        or not isinstance(conversation_id, int | str)
        or not str(conversation_id).isdigit()
    ):
        raise GenerationError("No such conversation.")
    found = Conversation.objects.filter(pk=int(conversation_id), user=user, model_id=model.id).first()
    if found is None:
        raise GenerationError("No such conversation.")
    return found


async def run_turn(turn: Turn, emit: Emit) -> None:
    """Sources, then every side's answer streamed at once. Each side always ends with "done"."""
    history = await database_sync_to_async(turn.conversation.history)()
    sides = [s for s, _ in turn.sides]
    await emit(
        {"type": "started", "conversation": turn.conversation.pk, "title": str(turn.conversation), "sides": sides}
    )
    try:
        sources = await sources_for(turn.user, turn.model, turn.question, turn.ground)
    except asyncio.CancelledError:
        for side, _ in turn.sides:
            await _safe(emit, {"type": "done", "side": side, "finish_reason": "cancelled", "message": None})
        raise
    await emit({"type": "citations", **sources})
    grounded = history
    if sources["used"]:
        grounded = await database_sync_to_async(citations.grounded)(history, sources["items"])
    await asyncio.gather(
        *[
            _answer(
                turn, side, ref, grounded if side == "model" else history, sources if side == "model" else None, emit
            )
            for side, ref in turn.sides
        ]
    )


async def _answer(turn: Turn, side: str, ref: ModelRef, history: list[dict], sources: dict | None, emit: Emit):
    text, finish = "", "cancelled"
    try:
        await emit({"type": "status", "side": side, "status": "generating"})
        async for event in generate(client.ChatRequest(ref, history, turn.params), turn.user.pk):
            if event["type"] == "error":
                await emit({"type": "error", "side": side, "error": event["message"]})
                finish = "error"
                break
            if event["type"] == "status":  # e.g. the worker is loading the model first
                await emit({"type": "status", "side": side, "status": event["status"]})
                continue
            text += event.get("text", "")
            if event.get("text"):
                await emit({"type": "token", "side": side, "text": event["text"]})
            if event["type"] == "done":
                finish = event["finish_reason"]
    except WorkerUnavailable as exc:
        await _safe(emit, {"type": "error", "side": side, "error": str(exc)})
        finish = "error"
    except asyncio.CancelledError:
        finish = "cancelled"
    finally:
        saved = None
        # an empty answer is still kept when it had sources, so they come back after a reload
        if text or (sources and sources["items"] and finish in ("stop", "length")):
            try:
                saved = await database_sync_to_async(save_answer)(turn.conversation, side, text, finish, sources)
            except Exception:  # the page must still hear "done"; the log keeps the cause
                log.exception("could not store the answer")
        await _safe(
            emit, {"type": "done", "side": side, "finish_reason": finish, "message": saved.pk if saved else None}
        )


def save_answer(conversation: Conversation, side: str, text: str, finish: str, sources: dict | None) -> Message:
    """Store an answer with its citations and, for a finished one, start scoring its influences."""
    message = Message.objects.create(
        conversation=conversation, role="assistant", side=side, content=printable(text), finish_reason=finish
    )
    if sources is not None:
        citations.store(message, sources["items"], sources["used"])
        if finish in ("stop", "length"):
            start_answer_attribution(message)
    return message


def printable(text: str) -> str:
    """Text a database can store: NUL characters (which a small model may emit) are dropped."""
    return text.replace("\x00", "")


async def _safe(emit: Emit, payload: dict) -> None:
    try:
        await emit(payload)
    except Exception:  # the socket is already gone
        pass
