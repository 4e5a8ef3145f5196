"""The chat pages."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_GET

from attribution.citations import stored_for
from attribution.services import answer_influence
from datanets.access import visible_to
from serving.models import Conversation
from serving.registry import ModelBlocked, ModelNotFound, resolve, usable_models
from training.models import BaseModel, TrainingJob


@login_required
@require_GET
def chat_index(request):
    return render(request, "serving/index.html", {"models": usable_models(request.user)})


@login_required
@require_GET
def chat(request, model_id: str):
    try:
        model = resolve(request.user, model_id)
    except ModelBlocked as exc:
        context = {"status": 403, "title": "This model is blocked", "text": str(exc)}
        return render(request, "error.html", context, status=403)
    except ModelNotFound:
        raise Http404("No such model.") from None
    conversations = Conversation.objects.filter(user=request.user, model_id=model.id)[:50]
    current = None
    if request.GET.get("c", "").isdigit():
        current = Conversation.objects.filter(user=request.user, model_id=model.id, pk=int(request.GET["c"])).first()
    datasets = []
    if model.adapter_path:
        job = TrainingJob.objects.get(pk=TrainingJob.pk_from_model_id(model.id))
        # Pins of Datanets the viewer may not see stay hidden: not even their names or sizes.
        datasets = list(job.datasets.filter(datanet__in=visible_to(request.user)).select_related("datanet", "version"))
    history = list(current.messages.all()) if current else []
    last = next((m for m in reversed(history) if m.role == "assistant" and m.side == "model"), None)
    sources = {"message": last.pk, "citations": stored_for(request.user, last),
               "influence": answer_influence(request.user, last)} if last else None  # fmt: skip
    demo = BaseModel.objects.filter(source=model.base_source, builtin=True).first()
    context = {"model": model, "conversations": conversations, "current": current, "datasets": datasets,
               "turns": turns_of(history), "sources": sources, "demo_note": demo.summary if demo else ""}  # fmt: skip
    return render(request, "serving/chat.html", context)


def turns_of(history: list) -> list[dict]:
    """The transcript as turns: a question and its answers, the model's before the base's
    (so a comparison shows as one row of two columns, in the same order as while it streamed)."""
    turns: list[dict] = []
    for message in history:
        if message.role == "user" or not turns:
            turns.append({"question": None, "answers": []})
        if message.role == "user":
            turns[-1]["question"] = message
        else:
            turns[-1]["answers"].append(message)
    for turn in turns:
        turn["answers"].sort(key=lambda m: m.side != "model")
    return turns
