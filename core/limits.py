"""An ASGI guard that refuses a request body by its size before the app reads it.

Django's ASGI handler reads a whole body (spooling it to disk) before any view or upload check
runs, so a size limit checked there comes after the bytes have arrived. This guard answers 413 at
once when `Content-Length` says too much, and for a body without one (chunked) it counts the bytes
as they arrive and stops at the limit: the app is told the client went away and the client gets
the 413. The message is JSON for /api/ and /v1/ paths and plain text elsewhere.
"""

from __future__ import annotations

import json

MULTIPART_SLACK = 1024 * 1024  # form fields and multipart boundaries around the largest allowed file


class BodySizeLimit:
    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await self.refuse(scope, send, int(length) if length.isdigit() else None)
        state = {"received": 0, "over": False, "started": False}

        async def counted_receive():
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_bytes:
                    state["over"] = True
                    return {"type": "http.disconnect"}
            return message

        async def tracked_send(message):
            state["started"] = state["started"] or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counted_receive, tracked_send)
        if state["over"] and not state["started"]:
            await self.refuse(scope, send, None)

    async def refuse(self, scope, send, size: int | None) -> None:
        told = f"{size:,} bytes" if size is not None else "more than the limit"
        text = f"The request is {told}; the limit is {self.max_bytes - MULTIPART_SLACK:,} bytes per upload."
        api = scope.get("path", "").startswith(("/api/", "/v1/"))
        body = json.dumps({"detail": text}).encode() if api else text.encode()
        kind = b"application/json" if api else b"text/plain; charset=utf-8"
        headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
