"""OpenAI-compatible API: GET /v1/models and POST /v1/chat/completions (streaming too).

Bearer API keys from the profile page; errors in OpenAI's shape
({"error": {"message", "type", "param", "code"}}), never a 5xx for bad input.
"""

from __future__ import annotations

import json
import time
import uuid

from asgiref.sync import sync_to_async
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import AuthenticationFailed

from accounts.authentication import bearer_token
from accounts.services import user_for_api_key
from serving import chat
from serving.engine.engine import GenerationError
from serving.registry import ModelNotFound, resolve, usable_models


def error(message: str, status: int, kind: str = "invalid_request_error", param=None, code=None) -> JsonResponse:
    return JsonResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status=status)


async def _user(request):
    try:
        token = bearer_token(request.headers.get("Authorization", ""))
    except AuthenticationFailed:
        return None
    return await sync_to_async(user_for_api_key)(token) if token else None


def _unauthorised() -> JsonResponse:
    return error("Invalid or missing API key. Send `Authorization: Bearer <key>` (create one on your profile page).",
                 401, "authentication_error", code="invalid_api_key")  # fmt: skip


@csrf_exempt
async def models(request):
    if request.method != "GET":
        return error("Use GET.", 405)
    user = await _user(request)
    if user is None:
        return _unauthorised()
    refs = await sync_to_async(usable_models)(user)
    data = [{"id": r.id, "object": "model", "created": r.created, "owned_by": r.owner} for r in refs]
    return JsonResponse({"object": "list", "data": data})


@csrf_exempt
async def chat_completions(request):
    if request.method != "POST":
        return error("Use POST.", 405)
    user = await _user(request)
    if user is None:
        return _unauthorised()
    try:
        body = json.loads(request.body or b"")
    except RequestDataTooBig:
        return error("The request body is too large.", 413)
    except ValueError:
        return error("The body is not valid JSON.", 400)
    if not isinstance(body, dict):
        return error("The body must be a JSON object.", 400)
    try:
        model = await sync_to_async(resolve)(user, body.get("model"))
    except ModelNotFound as exc:
        return error(str(exc), 404, param="model", code="model_not_found")
    try:
        generation = chat.request_for(model, body.get("messages"), body)
    except GenerationError as exc:
        return error(str(exc), 400)
    if body.get("n") not in (None, 1):
        return error("Only n=1 is supported.", 400, param="n")
    events = chat.generate(generation, user.pk)
    try:
        first = await anext(events)
    except chat.WorkerUnavailable as exc:
        return error(str(exc), 503, "server_error", code="model_server_unavailable")
    if first["type"] == "error":
        await events.aclose()
        refused = error(first["message"], first.get("status", 400))
        if refused.status_code == 429:
            refused["Retry-After"] = str(first.get("retry_after", 10))
        return refused
    completion_id, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    if body.get("stream"):
        response = StreamingHttpResponse(_sse(first, events, completion_id, created, model.id),
                                         content_type="text/event-stream")  # fmt: skip
        response["Cache-Control"] = "no-cache"
        return response
    text, event = first.get("text", ""), first
    async for event in events:
        if event["type"] == "error":
            return error(event["message"], event.get("status", 400))
        text += event.get("text", "")
    return JsonResponse({
        "id": completion_id, "object": "chat.completion", "created": created, "model": model.id,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": _finish(event.get("finish_reason"))}],
        "usage": event.get("usage", {}),
    })  # fmt: skip


def _finish(reason):
    return {"cancelled": "stop"}.get(reason, reason)


async def _sse(first, events, completion_id, created, model_id):
    def chunk(delta: dict, finish=None) -> str:
        payload = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model_id,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
        return f"data: {json.dumps(payload)}\n\n"

    try:
        yield chunk({"role": "assistant", "content": ""})
        event = first
        while True:
            if event["type"] == "error":
                yield f"data: {json.dumps({'error': {'message': event['message'], 'type': 'server_error'}})}\n\n"
                break
            if event.get("text"):
                yield chunk({"content": event["text"]})
            if event["type"] == "done":
                yield chunk({}, _finish(event.get("finish_reason")))
                break
            event = await anext(events)
        yield "data: [DONE]\n\n"
    finally:
        await events.aclose()  # a client that left: the worker stops generating for it
