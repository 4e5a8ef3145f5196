"""/ws/chat/<model id>/: streams a model's answer token by token (and the base
model's beside it in compare mode); a "stop" message cancels the generation."""

from __future__ import annotations

import asyncio
import json
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from attribution import citations
from attribution import client as retrieval
from attribution.services import answers_group, start_answer_attribution
from serving import client
from serving.engine.engine import GenerationError
from serving.models import Conversation, Message
from serving.registry import ModelNotFound, resolve

MAX_MESSAGE = 64 * 1024
log = logging.getLogger(__name__)


class ChatConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.tasks: list[asyncio.Task] = []
        try:
            self.model = await database_sync_to_async(resolve)(
                self.scope.get("user"), self.scope["url_route"]["kwargs"]["model_id"]
            )
        except ModelNotFound:
            await self.close()  # anonymous, forbidden or unknown: refused alike
            return
        self.group = answers_group(self.scope["user"].pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.reply({"type": "ready", "model": self.model.id})

    async def disconnect(self, code):
        for task in getattr(self, "tasks", []):
            task.cancel()  # the stream's cleanup tells the worker to stop
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def answer_influence(self, event):
        """'Influenced by' for an answer, already limited to what this user may read."""
        await self.reply({k: v for k, v in event.items() if k != "type"} | {"type": "influence"})

    async def reply(self, payload: dict) -> None:
        await self.send(text_data=json.dumps(payload))

    async def receive(self, text_data=None, bytes_data=None):
        if text_data is None or len(text_data) > MAX_MESSAGE:
            return await self.reply({"type": "error", "error": "Messages must be JSON text under 64 KB."})
        try:
            message = json.loads(text_data)
            assert isinstance(message, dict)
        except (ValueError, AssertionError):
            return await self.reply({"type": "error", "error": "Message is not a JSON object."})
        if message.get("type") == "stop":
            for task in self.tasks:
                task.cancel()
            return None
        if message.get("type") != "ask":
            return await self.reply({"type": "error", "error": 'Send {"type": "ask", "content": "..."} or "stop".'})
        if any(not t.done() for t in self.tasks):
            return await self.reply({"type": "error", "error": "Wait for the current answer, or stop it first."})
        try:
            content = message.get("content")
            if not isinstance(content, str) or not content.strip():
                raise GenerationError("Type a question first.")
            params = client.params_from(message.get("params") or {})
            conversation = await database_sync_to_async(self._conversation)(message, content, params)
        except GenerationError as exc:
            return await self.reply({"type": "error", "error": str(exc)})
        sides = [("model", self.model)]
        if message.get("compare") and self.model.adapter_path:
            base = await database_sync_to_async(self._base_ref)()
            if base is not None:
                sides.append(("base", base))
        history = await database_sync_to_async(conversation.history)()
        await self.reply({"type": "started", "conversation": conversation.pk, "sides": [s for s, _ in sides]})
        sources = await self._citations(content, bool(message.get("ground")))
        grounded = (
            await database_sync_to_async(citations.grounded)(history, sources["items"]) if sources["used"] else history
        )
        self.tasks = [
            asyncio.create_task(self._answer(conversation, side, ref, grounded if side == "model" else history,
                                             params, sources if side == "model" else None))
            for side, ref in sides
        ]  # fmt: skip
        return None

    async def _citations(self, query: str, ground: bool) -> dict:
        """Retrieve the top records for the question from the Datanets this viewer may read."""
        user = self.scope["user"]
        datanets = await database_sync_to_async(citations.citable_datanets)(user, self.model.id)
        items, error = [], None
        if datanets:
            try:
                hits = await retrieval.retrieve(query, datanets, settings.CITATIONS_PER_ANSWER)
                items = await database_sync_to_async(citations.hydrate)(user, hits, query)
            except retrieval.RetrievalUnavailable as exc:
                error = str(exc)
        elif not self.model.adapter_path:
            error = "Base models are not trained on a Datanet, so there is nothing to cite."
        sources = {"items": items, "used": ground and bool(items), "error": error}
        await self.reply({"type": "citations", **sources})
        return sources

    def _conversation(self, message, content, params) -> Conversation:
        user = self.scope["user"]
        conv_id = message.get("conversation")
        conversation = None
        if conv_id is not None:
            conversation = Conversation.objects.filter(pk=conv_id, user=user, model_id=self.model.id).first()
            if conversation is None:
                raise GenerationError("No such conversation.")
        if conversation is None:
            conversation = Conversation.objects.create(user=user, model_id=self.model.id, title=content[:80])
        system = message.get("system")
        if isinstance(system, str) and system != conversation.system_prompt:
            conversation.system_prompt = system[:8000]
            conversation.save(update_fields=["system_prompt", "updated_at"])
        Message.objects.create(
            conversation=conversation, role="user", content=content, params=message.get("params") or {}
        )
        return conversation

    def _base_ref(self):
        from training.models import BaseModel

        base = BaseModel.objects.filter(source=self.model.base_source, enabled=True).first()
        return resolve(self.scope["user"], f"base-{base.pk}") if base else None

    async def _answer(self, conversation, side, ref, history, params, sources=None):
        text, finish = "", "cancelled"
        try:
            async for event in client.stream(client.ChatRequest(ref, history, params)):
                if event["type"] == "error":
                    await self.reply({"type": "error", "side": side, "error": event["message"]})
                    finish = "error"
                    break
                text += event.get("text", "")
                if event.get("text"):
                    await self.reply({"type": "token", "side": side, "text": event["text"]})
                if event["type"] == "done":
                    finish = event["finish_reason"]
        except client.ServingUnavailable as exc:
            await self.reply({"type": "error", "side": side, "error": str(exc)})
            finish = "error"
        except asyncio.CancelledError:
            finish = "cancelled"
        finally:
            saved = None
            # an empty answer is still kept when it had sources, so they come back after a reload
            if text or (sources and sources["items"] and finish in ("stop", "length")):
                try:
                    saved = await database_sync_to_async(self._save_answer)(conversation, side, text, finish, sources)
                except Exception:  # the page must still hear "done"; the log keeps the cause
                    log.exception("could not store the answer")
            try:
                await self.reply({"type": "done", "side": side, "finish_reason": finish,
                                  "message": saved.pk if saved else None})  # fmt: skip
            except Exception:  # the socket is already gone
                pass

    def _save_answer(self, conversation, side, text, finish, sources) -> Message:
        message = Message.objects.create(
            conversation=conversation, role="assistant", side=side, content=text, finish_reason=finish
        )
        if sources is not None:
            citations.store(message, sources["items"], sources["used"])
            if finish in ("stop", "length"):
                start_answer_attribution(message)
        return message
