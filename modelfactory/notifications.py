"""Per-user notifications pushed to the browser over /ws/notifications/.

Workers call notify_user(); the consumer only forwards to the signed-in user's
own group. The base layout shows each message as a toast.
"""

from __future__ import annotations

import json

from asgiref.sync import async_to_sync
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer

MAX_CLIENT_MESSAGE = 1024
LEVELS = {"info", "success", "warning", "error"}


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def notify_user(user_id: int, text: str, level: str = "info") -> None:
    """Push a short message to every open page of one user (fire and forget)."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {sorted(LEVELS)}")
    layer = get_channel_layer()
    async_to_sync(layer.group_send)(user_group(user_id), {"type": "notify", "level": level, "text": text[:500]})


class NotificationConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()  # before accept: the handshake is refused with 403
            return
        self.group = user_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello", "user": user.get_username()})

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

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

    async def notify(self, event):
        await self.send_json({"type": "notify", "level": event["level"], "text": event["text"]})

    async def send_json(self, payload: dict) -> None:
        await self.send(text_data=json.dumps(payload))
