"""Live events: worker → channel group → consumer → browser.

`send(group, payload)` is the one way any process pushes an event; a consumer
built on `LiveConsumer` checks access on connect, joins its group, sends the
history from the database (so nothing is missed across a reconnect) and then
forwards every live payload as is. Per-user notifications (/ws/notifications/)
are the simplest such channel.
"""

from __future__ import annotations

import json

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer

MAX_CLIENT_MESSAGE = 1024
LEVELS = {"info", "success", "warning", "error"}


def send(group: str, payload: dict) -> None:
    """Push `payload` (a JSON object with a "type") to every consumer in `group` (fire and forget)."""
    async_to_sync(get_channel_layer().group_send)(group, {"type": "live.event", "payload": payload})


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def notify_user(user_id: int, text: str, level: str = "info") -> None:
    """Push a short message to every open page of one user; the base layout shows it as a toast."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {sorted(LEVELS)}")
    send(user_group(user_id), {"type": "notify", "level": level, "text": text[:500]})


class LiveConsumer(AsyncWebsocketConsumer):
    """History, then live events. Subclasses say who may watch what and what the history is.

    `subject()` runs in a thread and returns what the viewer may watch, or None to
    refuse the handshake (anonymous, forbidden and unknown look alike). The consumer
    joins the group before reading the history: an event stored in between arrives
    twice at worst (pages merge by key), never zero times.
    """

    def subject(self):
        raise NotImplementedError

    def group_for(self, subject) -> str:
        raise NotImplementedError

    def history(self, subject) -> dict | None:
        return None

    async def connect(self):
        self.watched = await database_sync_to_async(self.subject)()
        if self.watched is None:
            await self.close()  # before accept: the handshake is refused with 403
            return
        self.group = self.group_for(self.watched)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        first = await database_sync_to_async(self.history)(self.watched)
        if first is not None:
            await self.send_json(first)

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def live_event(self, event):
        await self.send_json(event["payload"])

    async def receive(self, text_data=None, bytes_data=None):
        await self.send_json({"type": "error", "error": "This channel only sends; it takes no messages."})

    async def send_json(self, payload: dict) -> None:
        await self.send(text_data=json.dumps(payload))


class NotificationConsumer(LiveConsumer):
    def subject(self):
        user = self.scope.get("user")
        return user if user is not None and user.is_authenticated else None

    def group_for(self, user) -> str:
        return user_group(user.pk)

    def history(self, user) -> dict:
        return {"type": "hello", "user": user.get_username()}

    async def receive(self, text_data=None, bytes_data=None):
        # The only client message is a keep-alive; anything else gets a clear error.
        if text_data is None or len(text_data) > MAX_CLIENT_MESSAGE:
            await self.send_json({"type": "error", "error": "Messages must be JSON text under 1 KB."})
            return
        try:
            message = json.loads(text_data)
        except ValueError:
            await self.send_json({"type": "error", "error": "Message is not valid JSON."})
            return
        if isinstance(message, dict) and message.get("type") == "ping":
            await self.send_json({"type": "pong"})
        else:
            await self.send_json({"type": "error", "error": 'Unknown message; send {"type": "ping"}.'})
