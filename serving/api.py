"""/api/v1/models/: the models a caller may use, their cards, and adapter export."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from django.http import FileResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from modelfactory.api import ServiceError
from serving import export
from serving.models import MergedExport
from serving.registry import ModelNotFound, job_id, resolve, usable_models
from training.models import TrainingJob

EXPORT_FILES = ("adapter_config.json", "adapter_model.safetensors", "README.md")


class ModelSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    base = serializers.CharField(source="base_source")
    owner = serializers.CharField()
    kind = serializers.SerializerMethodField()

    def get_kind(self, ref) -> str:
        return "adapter" if ref.adapter_path else "base"


class ModelViewSet(viewsets.ViewSet):
    lookup_value_regex = r"[a-z]+-\d+"

    def _ref(self, pk):
        try:
            return resolve(self.request.user, pk)
        except ModelNotFound as exc:
            raise NotFound(str(exc)) from None

    @extend_schema(responses=ModelSerializer(many=True))
    def list(self, request):
        return Response(ModelSerializer(usable_models(request.user), many=True).data)

    @extend_schema(responses=dict, parameters=[OpenApiParameter("id", str, OpenApiParameter.PATH)])
    def retrieve(self, request, pk=None):
        ref = self._ref(pk)
        data = ModelSerializer(ref).data
        if ref.adapter_path:
            job = TrainingJob.objects.get(pk=job_id(pk))
            card = Path(ref.adapter_path) / "README.md"
            data.update(
                card=card.read_text() if card.exists() else "",
                metrics=job.final_metrics, config=job.config,
                datanets=[{"slug": d.datanet.slug, "version": d.version.number, "size": d.size, "root": d.root}
                          for d in job.datasets.select_related("datanet", "version")],
            )  # fmt: skip
        return Response(data)

    @extend_schema(responses={(200, "application/zip"): OpenApiResponse(description="adapter zip")})
    @action(detail=True, methods=["get"])
    def export(self, request, pk=None):
        """A zip with adapter_config.json, adapter_model.safetensors and the model card README.md,
        loadable with PeftModel.from_pretrained as is."""
        ref = self._ref(pk)
        if not ref.adapter_path:
            raise ValidationError({"model": "Base models are not exported here; use their Hugging Face id."})
        if request.query_params.get("merged") in ("1", "true"):
            job = export.request_merge(request.user, ref.id)
            return Response(_export_status(job, request), status=200 if job.status == "succeeded" else 202)
        folder = Path(ref.adapter_path)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in EXPORT_FILES:
                if (folder / name).exists():
                    archive.write(folder / name, name)
        buffer.seek(0)
        return FileResponse(buffer, as_attachment=True, filename=f"{ref.id}.zip", content_type="application/zip")

    @extend_schema(request=dict, responses=dict)
    @action(detail=True, methods=["post"])
    def citations(self, request, pk=None):
        """The records retrieved for {"query": "..."} from the Datanets this model was trained on,
        limited to those the caller may read."""
        from attribution import citations, client

        ref = self._ref(pk)
        query = request.data.get("query") if isinstance(request.data, dict) else None
        if not isinstance(query, str) or not query.strip() or len(query) > 4000:
            raise ValidationError({"query": "Give a question of 1 to 4,000 characters."})
        k = request.data.get("k", 5)
        if not isinstance(k, int) or not 1 <= k <= 20:
            raise ValidationError({"k": "k is a whole number from 1 to 20."})
        try:
            hits = client.retrieve_sync(query, citations.citable_datanets(request.user, ref.id), k)
        except client.RetrievalUnavailable as exc:
            raise ServiceError(exc) from None
        return Response({"model": ref.id, "citations": citations.hydrate(request.user, hits, query)})

    @extend_schema(responses=dict)
    @action(detail=True, methods=["get"])
    def attribution(self, request, pk=None):
        """Training-side influence of each contribution on this model (records the caller may read)."""
        from attribution.services import model_scores

        ref = self._ref(pk)
        if not ref.adapter_path:
            raise ValidationError({"model": "Base models have no training attribution."})
        return Response({"model": ref.id, **model_scores(request.user, TrainingJob.objects.get(pk=job_id(pk)))})


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

    @extend_schema(responses=dict)
    def retrieve(self, request, pk=None):
        return Response(_export_status(self._job(pk), request))

    @extend_schema(responses={(200, "application/zip"): OpenApiResponse(description="merged weights zip")})
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        job = self._job(pk)
        if job.status != "succeeded" or not Path(job.archive).exists():
            raise ValidationError({"status": f"The export is {job.status}; download it when it has succeeded."})
        return FileResponse(open(job.archive, "rb"), as_attachment=True, filename=Path(job.archive).name,
                            content_type="application/zip")  # fmt: skip
