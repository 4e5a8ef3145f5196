"""A chat turn's checks (serving.chat.open_turn) and the consumer's answers to malformed
messages: a clear error, nothing written, and the socket stays usable."""

from __future__ import annotations

import json

import pytest
from channels.testing import WebsocketCommunicator

from serving import chat
from serving.consumers import ChatConsumer
from serving.engine.engine import GenerationError
from serving.models import Conversation, Message
from serving.registry import resolve
from tests.helpers import run_async
from training.models import BaseModel

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def base_ref(user):
    base = BaseModel.objects.create(name="Chat base", source="/nonexistent/chat-base", methods=["lora"])
    return resolve(user, base.model_id)


@pytest.mark.parametrize(
    "message, error",
    [
        ({"content": "  "}, "Type a question first."),
        ({"content": 42}, "Type a question first."),
        ({"content": "hi", "conversation": "abc"}, "No such conversation."),
        ({"content": "hi", "conversation": [1]}, "No such conversation."),
        ({"content": "hi", "conversation": True}, "No such conversation."),
        ({"content": "hi", "conversation": 999999}, "No such conversation."),
        ({"content": "hi", "params": ["max_tokens", 5]}, "Generation parameters must be a JSON object."),
        ({"content": "hi", "params": {"max_tokens": "many"}}, "Invalid generation parameter"),
    ],
)
def test_a_malformed_ask_is_refused_in_plain_words_and_writes_nothing(user, base_ref, message, error):
    with pytest.raises(GenerationError, match=error):
        chat.open_turn(user, base_ref, message)
    assert not Conversation.objects.exists() and not Message.objects.exists()


def test_another_users_conversation_is_no_such_conversation(user, other_user, base_ref):
    theirs = Conversation.objects.create(user=other_user, model_id=base_ref.id, title="theirs")
    with pytest.raises(GenerationError, match="No such conversation."):
        chat.open_turn(user, base_ref, {"content": "hi", "conversation": theirs.pk})
    assert not Message.objects.exists()


def test_a_turn_stores_the_question_with_the_checked_parameters(user, base_ref):
    turn = chat.open_turn(user, base_ref, {"content": "What is\x00 LoRA?", "system": "Be brief.",
                                           "params": {"max_tokens": 9, "stop": ["##"]}})  # fmt: skip
    question = Message.objects.get(conversation=turn.conversation)
    assert question.content == "What is LoRA?" and turn.conversation.system_prompt == "Be brief."
    assert question.params["max_tokens"] == 9 and question.params["stop"] == ["##"]
    assert turn.sides == [("model", base_ref)]  # no comparison for a base model


def test_the_consumer_answers_bad_messages_and_keeps_the_socket(user, base_ref):
    async def go():
        socket = WebsocketCommunicator(ChatConsumer.as_asgi(), f"/ws/chat/{base_ref.id}/")
        socket.scope["user"] = user
        socket.scope["url_route"] = {"kwargs": {"model_id": base_ref.id}}
        connected, _ = await socket.connect()
        replies = [await socket.receive_json_from(timeout=10)]
        for text in (json.dumps({"type": "ask", "content": "hi", "conversation": "abc"}), "[1, 2]", "{oops",
                     json.dumps({"type": "dance"})):  # fmt: skip
            await socket.send_to(text_data=text)
            replies.append(await socket.receive_json_from(timeout=10))
        await socket.disconnect()
        return connected, replies

    connected, replies = run_async(go())
    assert connected and replies[0] == {"type": "ready", "model": base_ref.id}
    assert [r["type"] for r in replies[1:]] == ["error"] * 4
    assert replies[1]["error"] == "No such conversation."
    assert replies[2]["error"] == replies[3]["error"] == "Message is not a JSON object."
    assert "ask" in replies[4]["error"]
    assert not Conversation.objects.exists()
