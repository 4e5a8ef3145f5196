"""REST API: /api/v1/training/jobs/ (start, list, detail with metrics, cancel) and base models."""

from __future__ import annotations

import uuid

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from core.api import ServiceError, StrictCharField
from datanets.access import trainable_by, visible_to
from training import services
from training.engine.config import DERIVED, KNOBS, PRESETS, Knob
from training.models import BaseModel, MetricPoint, TrainingJob


class BaseModelSerializer(serializers.ModelSerializer):
    """A base model as people see it: its name, its Hugging Face id when it has one, never a server folder."""

    hub_id = serializers.CharField(read_only=True, help_text="Hugging Face id; empty for a model kept on this server.")
    summary = serializers.CharField(read_only=True, help_text="What it can and cannot do, in one sentence.")

    class Meta:
        model = BaseModel
        fields = ["id", "name", "hub_id", "summary", "architecture", "parameter_count", "context_length", "licence",
                  "methods", "builtin"]  # fmt: skip


class PointSerializer(serializers.ModelSerializer):
    class Meta:
        model = MetricPoint
        fields = ["step", *MetricPoint.FIELDS]


class JobSerializer(serializers.ModelSerializer):
    base_model = serializers.CharField(source="base_model.name")
    config = serializers.JSONField(source="public_config", read_only=True)
    datanets = serializers.SerializerMethodField()

    class Meta:
        model = TrainingJob
        fields = [
            "id", "name", "status", "message", "base_model", "preset", "config", "datanets", "record_count",
            "progress", "eta_seconds", "last_step", "final_metrics", "created_at", "started_at", "finished_at",
        ]  # fmt: skip

    def get_datanets(self, job) -> list[dict]:
        """The pinned Datanets the viewer may still see: after a removal from a private Datanet, not even
        its slug, size or root."""
        request = self.context.get("request")
        pins = job.datasets.filter(datanet__in=visible_to(request.user if request else None))
        return [{"slug": d.datanet.slug, "version": d.version.number, "size": d.size, "root": d.root}
                for d in pins.select_related("datanet", "version")]  # fmt: skip


class JobDetailSerializer(JobSerializer):
    metrics = PointSerializer(source="points", many=True)

    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "metrics", "log_tail"]


def knob_serializer_field(knob: Knob) -> serializers.Field:
    """The API field for a FinetuneConfig knob, from its metadata (what the schema documents)."""
    bounds = knob.bounds_text()
    common = {
        "required": False,
        "label": knob.label,
        "help_text": f"{knob.help} Allowed: {bounds}." if bounds else knob.help,
    }
    if knob.kind is list:
        return serializers.ListField(child=serializers.CharField(), min_length=1, allow_null=True, **common)
    if knob.kind is bool:
        return serializers.BooleanField(**common)
    if knob.choices:
        return serializers.ChoiceField(choices=list(knob.choices), **common)
    field = serializers.IntegerField if knob.kind is int else serializers.FloatField
    # An exclusive bound is left to the help text: OpenAPI's minimum / maximum are inclusive.
    low, high = (None if knob.min_exclusive else knob.min), (None if knob.max_exclusive else knob.max)
    return field(min_value=low, max_value=high, **common)


class _ConfigSerializer(serializers.Serializer):
    """Any FinetuneConfig setting to override; settings left out take the preset's value, else the default.

    The fields describe the settings (OpenAPI); the values are checked once, by FinetuneConfig itself when the
    job's config is built, so a wrong type or range is a 400 naming the setting."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError("Expected an object of settings.")
        return dict(data)


# Generated from the metadata: one optional field per knob the request may set.
FinetuneConfigSerializer = serializers.SerializerMetaclass(
    "FinetuneConfigSerializer",
    (_ConfigSerializer,),
    {"__module__": __name__, **{k.name: knob_serializer_field(k) for k in KNOBS.values() if k.name not in DERIVED}},
)


class StartSerializer(serializers.Serializer):
    name = StrictCharField(max_length=120, required=False, allow_blank=True, default="")
    base_model = serializers.PrimaryKeyRelatedField(queryset=BaseModel.objects.filter(enabled=True))
    datanets = serializers.ListField(child=serializers.SlugField(), min_length=1, max_length=20)
    preset = serializers.ChoiceField(choices=[(p.name, p.choice_label) for p in PRESETS.values()], default="quick")
    config = FinetuneConfigSerializer(required=False, default=dict)
    request_key = StrictCharField(max_length=64, required=False, help_text="Idempotency key.")

    def validate_datanets(self, slugs):
        found = {d.slug: d for d in trainable_by(self.context["request"].user).filter(slug__in=slugs)}
        missing = [s for s in slugs if s not in found]
        if missing:
            raise serializers.ValidationError(f"No Datanet you may train on: {', '.join(missing)}.")
        return [found[s] for s in dict.fromkeys(slugs)]  # one named twice is trained on (and counted) once


class TrainingJobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    def get_throttles(self):
        self.throttle_scope = "jobs" if self.action == "create" else ""  # starting jobs has a rate of its own
        return super().get_throttles()

    def get_queryset(self):
        return services.visible_jobs(self.request.user).order_by("-created_at")

    def get_serializer_class(self):
        return JobDetailSerializer if self.action == "retrieve" else JobSerializer

    @extend_schema(request=StartSerializer, responses={201: JobSerializer})
    def create(self, request):
        body = StartSerializer(data=request.data, context={"request": request})
        body.is_valid(raise_exception=True)
        d = body.validated_data
        overrides = dict(d["config"])
        overrides["schema"] = d["datanets"][0].schema
        try:
            cfg = services.config_from(d["preset"], overrides, d["base_model"], d["datanets"])
            job = services.start_job(
                request.user, name=d["name"], base_model=d["base_model"], datanets=d["datanets"], cfg=cfg,
                preset=d["preset"], request_key=d.get("request_key") or uuid.uuid4().hex,
            )  # fmt: skip
        except services.TrainingError as exc:
            raise ServiceError(exc) from None
        return Response(JobSerializer(job, context={"request": request}).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=JobSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = self.get_object()
        try:
            services.cancel(request.user, job)
        except services.TrainingError as exc:
            raise ServiceError(exc) from None
        job.refresh_from_db()
        return Response(JobSerializer(job, context={"request": request}).data)


class BaseModelViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = BaseModelSerializer
    queryset = BaseModel.objects.filter(enabled=True)
