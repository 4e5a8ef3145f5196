"""/ws/chat/<model id>/: streams a model's answer token by token (and the base
model's beside it in compare mode); a "stop" message cancels the generation.
The turn itself is serving.chat's; this only translates messages."""

from __future__ import annotations

import asyncio
import json

from channels.db import database_sync_to_async

from attribution.services import answers_group
from core.live import LiveConsumer
from serving import chat
from serving.engine.engine import GenerationError
from serving.registry import ModelNotFound, resolve

MAX_MESSAGE = 64 * 1024


class ChatConsumer(LiveConsumer):
    """Live events here are 'Influenced by' reports for this user's answers, already
    limited to what the user may read (attribution.services)."""

    turn: asyncio.Task | None = None

    def subject(self):
        try:
            return resolve(self.scope.get("user"), self.scope["url_route"]["kwargs"]["model_id"])
        except ModelNotFound:
            return None  # anonymous, forbidden or unknown: refused alike

    def group_for(self, model) -> str:
        return answers_group(self.scope["user"].pk)

    def history(self, model) -> dict:
        return {"type": "ready", "model": model.id}

    async def disconnect(self, code):
        if self.turn is not None:
            self.turn.cancel()  # the stream's cleanup tells the worker to stop
        await super().disconnect(code)

    async def receive(self, text_data=None, bytes_data=None):
        if text_data is None or len(text_data) > MAX_MESSAGE:
            return await self.error("Messages must be JSON text under 64 KB.")
        try:
            message = json.loads(text_data)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            return await self.error("Message is not a JSON object.")
        if message.get("type") == "stop":
            if self.turn is not None:
                self.turn.cancel()
            return None
        if message.get("type") != "ask":
            return await self.error('Send {"type": "ask", "content": "..."} or "stop".')
        if self.turn is not None and not self.turn.done():
            return await self.error("Wait for the current answer, or stop it first.")
        try:
            turn = await database_sync_to_async(chat.open_turn)(self.scope["user"], self.watched, message)
        except GenerationError as exc:
            return await self.error(str(exc))
        self.turn = asyncio.create_task(chat.run_turn(turn, self.send_json))
        return None

    async def error(self, text: str) -> None:
        await self.send_json({"type": "error", "error": text})
