"""/api/v1/models/: the models a caller may use, their cards, sources, attribution and
adapter export; /api/v1/exports/ (merged exports); /api/v1/conversations/ (the caller's chats)."""

from __future__ import annotations

from pathlib import Path

from django.http import FileResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from attribution import retrieval
from attribution.citations import stored_for
from attribution.services import answer_influence, model_scores
from core.api import OBJECT, ServiceError
from datanets.access import visible_to
from serving import chat, export
from serving.models import Conversation, MergedExport
from serving.registry import ModelNotFound, resolve, usable_models
from training.models import TrainingJob

CITATIONS_REQUEST = {
    "application/json": {
        "type": "object", "required": ["query"],
        "properties": {"query": {"type": "string", "minLength": 1, "maxLength": 4000, "pattern": "\\S"},
                       "k": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5}},
    }
}  # fmt: skip


class ModelSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    base = serializers.CharField(source="base_name", help_text="The base model's display name.")
    base_hub_id = serializers.CharField(help_text="The base model's Hugging Face id; empty for one kept on the server.")
    owner = serializers.CharField()
    kind = serializers.SerializerMethodField()

    def get_kind(self, ref) -> str:
        return "adapter" if ref.adapter_path else "base"


class ModelViewSet(viewsets.ViewSet):
    lookup_value_regex = r"[a-z]+-\d+"
    throttle_scope = ""  # per action: citations has a rate of its own

    def _ref(self, pk):
        try:
            return resolve(self.request.user, pk)
        except ModelNotFound as exc:
            raise NotFound(str(exc)) from None

    @extend_schema(responses=ModelSerializer(many=True))
    def list(self, request):
        return Response(ModelSerializer(usable_models(request.user), many=True).data)

    @extend_schema(responses={200: OBJECT}, parameters=[OpenApiParameter("id", str, OpenApiParameter.PATH)])
    def retrieve(self, request, pk=None):
        ref = self._ref(pk)
        data = ModelSerializer(ref).data
        if ref.adapter_path:
            job = TrainingJob.objects.get(pk=TrainingJob.pk_from_model_id(ref.id))
            card = Path(ref.adapter_path) / "README.md"
            data.update(
                card=card.read_text() if card.exists() else "",
                metrics=job.final_metrics, config=job.public_config(),
                datanets=[{"slug": d.datanet.slug, "version": d.version.number, "size": d.size, "root": d.root}
                          for d in job.datasets.filter(datanet__in=visible_to(request.user))
                          .select_related("datanet", "version")],
            )  # fmt: skip
        return Response(data)

    @extend_schema(responses={(200, "application/zip"): OpenApiResponse(description="adapter zip")})
    @action(detail=True, methods=["get"])
    def export(self, request, pk=None):
        """A zip with adapter_config.json, adapter_model.safetensors and the model card README.md,
        loadable with PeftModel.from_pretrained as is."""
        ref = self._ref(pk)
        if not ref.adapter_path:
            raise NotFound("Base models have no export here; use their Hugging Face id.")
        if request.query_params.get("merged") in ("1", "true"):
            job = export.request_merge(request.user, ref.id)
            return Response(_export_status(job, request), status=200 if job.status == "succeeded" else 202)
        return FileResponse(
            export.adapter_zip(ref), as_attachment=True, filename=f"{ref.id}.zip", content_type="application/zip"
        )

    @extend_schema(request=CITATIONS_REQUEST, responses={200: OBJECT})
    @action(detail=True, methods=["post"], throttle_scope="citations")
    def citations(self, request, pk=None):
        """The records retrieved for {"query": "..."} from the Datanets this model was trained on,
        limited to those the caller may read."""
        ref = self._ref(pk)
        query = request.data.get("query") if isinstance(request.data, dict) else None
        if not isinstance(query, str) or not query.strip() or len(query) > 4000:
            raise ValidationError({"query": "Give a question of 1 to 4,000 characters."})
        k = request.data.get("k", 5)
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 20:
            raise ValidationError({"k": "k is a whole number from 1 to 20."})
        try:
            found = chat.find_sources(request.user, ref, query, k)
        except retrieval.RetrievalUnavailable as exc:
            raise ServiceError(exc) from None
        return Response({"model": ref.id, "citations": found})

    @extend_schema(responses={200: OBJECT})
    @action(detail=True, methods=["get"])
    def attribution(self, request, pk=None):
        """Training-side influence of each contribution on this model (records the caller may read)."""
        ref = self._ref(pk)
        if not ref.adapter_path:
            raise NotFound("Base models have no training attribution.")
        job = TrainingJob.objects.get(pk=TrainingJob.pk_from_model_id(ref.id))
        return Response({"model": ref.id, **model_scores(request.user, job)})


def _export_status(job: MergedExport, request) -> dict:
    data = {"id": job.pk, "model": job.model_id, "status": job.status, "message": job.message,
            "status_url": request.build_absolute_uri(f"/api/v1/exports/{job.pk}/")}  # fmt: skip
    if job.status == "succeeded":
        data["download_url"] = request.build_absolute_uri(f"/api/v1/exports/{job.pk}/download/")
    return data


@extend_schema(parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH)])
class ExportViewSet(viewsets.ViewSet):
    """Status and download of merged exports (only the requester's)."""

    lookup_value_regex = r"\d+"

    def _job(self, pk) -> MergedExport:
        job = MergedExport.objects.filter(pk=pk, owner=self.request.user).first() if str(pk).isdigit() else None
        if job is None:
            raise NotFound("No such export.")
        return job

    @extend_schema(responses={200: OBJECT})
    def retrieve(self, request, pk=None):
        return Response(_export_status(self._job(pk), request))

    @extend_schema(responses={(200, "application/zip"): OpenApiResponse(description="merged weights zip")})
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        job = self._job(pk)
        try:
            resolve(request.user, job.model_id)  # blocked since the merge (access removed): no download either
        except ModelNotFound as exc:
            raise NotFound(str(exc)) from None
        if job.status != "succeeded" or not Path(job.archive).exists():
            raise ValidationError({"status": f"The export is {job.status}; download it when it has succeeded."})
        return FileResponse(open(job.archive, "rb"), as_attachment=True, filename=Path(job.archive).name,
                            content_type="application/zip")  # fmt: skip


class ConversationViewSet(viewsets.ViewSet):
    """The caller's conversations; each answer with its stored citations and influence."""

    def _messages(self, request, conversation) -> list[dict]:
        out = []
        for m in conversation.messages.all():
            data = {"id": m.pk, "role": m.role, "side": m.side, "content": m.content, "finish_reason": m.finish_reason,
                    "created": m.created_at.isoformat()}  # fmt: skip
            if m.role == "assistant" and m.side == "model":
                data["citations"] = stored_for(request.user, m)
                data["influence"] = answer_influence(request.user, m)
            out.append(data)
        return out

    @extend_schema(operation_id="conversations_list", responses={200: OBJECT})
    def list(self, request):
        rows = Conversation.objects.filter(user=request.user)[:200]
        return Response([{"id": c.pk, "model": c.model_id, "title": c.title, "updated": c.updated_at.isoformat()}
                         for c in rows])  # fmt: skip

    @extend_schema(responses={200: OBJECT}, parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH)])
    def retrieve(self, request, pk=None):
        conversation = Conversation.objects.filter(user=request.user, pk=int(pk) if str(pk).isdigit() else -1).first()
        if conversation is None:
            raise NotFound("No such conversation.")
        return Response({"id": conversation.pk, "model": conversation.model_id, "title": conversation.title,
                         "messages": self._messages(request, conversation)})  # fmt: skip
