"""REST API for Datanets under /api/v1/datanets/. Every view starts from datanets.access."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from core.api import OBJECT, Conflict, ServiceError, StrictBooleanField, StrictCharField, StrictModelSerializer
from datanets import services, uploads
from datanets.access import Action, can, get_for, readable_by, visible_to
from datanets.models import AccessRequest, Contribution, Datanet, DatanetVersion, Membership, Role, UploadBatch

VERSION_NUMBER = {"type": "integer", "minimum": 1}


class DatanetSerializer(StrictModelSerializer):
    """A Datanet: its card, who decides on uploads, and its current version (number, size, Merkle root)."""

    owner = serializers.CharField(source="owner.username", read_only=True)
    current_version = serializers.SerializerMethodField()
    domain_tags = serializers.ListField(
        child=StrictCharField(min_length=1, max_length=40), max_length=10, required=False
    )

    class Meta:
        model = Datanet
        fields = [
            "slug", "name", "description", "domain_tags", "licence", "visibility", "schema", "review_policy",
            "review_votes", "models_after_removal", "owner", "created_at", "updated_at", "current_version",
        ]  # fmt: skip
        read_only_fields = ["owner", "created_at", "updated_at"]
        extra_kwargs = {
            # no uniqueness check here: services.create_datanet answers a taken address without telling
            # that a private Datanet holds it
            "slug": {"required": False, "validators": []},
            "name": {"min_length": 1},
            "licence": {"min_length": 1},
        }

    def get_current_version(self, obj) -> dict | None:
        v = obj.current_version
        return {"number": v.number, "size": v.size, "root": v.root} if v else None

    def validate(self, attrs):
        if self.instance is not None:
            for frozen in ("slug", "schema"):
                if frozen in attrs and attrs[frozen] != getattr(self.instance, frozen):
                    raise Conflict({frozen: "cannot change once the Datanet exists."})
        return attrs


class RecordSerializer(serializers.ModelSerializer):
    contributor = serializers.CharField(source="contributor.username")

    class Meta:
        model = Contribution
        fields = ["id", "log_index", "content", "content_hash", "contributor", "created_at"]


class ContributionSerializer(serializers.ModelSerializer):
    contributor = serializers.CharField(source="contributor.username")

    class Meta:
        model = Contribution
        fields = ["id", "status", "content", "content_hash", "contributor", "source_file", "source_row",
                  "needs_votes", "created_at", "decided_at", "log_index"]  # fmt: skip


class UploadSerializer(serializers.ModelSerializer):
    next_steps = serializers.SerializerMethodField(help_text="What happens to these records next, and who decides.")

    class Meta:
        model = UploadBatch
        fields = ["id", "status", "message", "next_steps", "filename", "file_format", "size_bytes", "rows_total",
                  "rows_done", "rows_added", "rows_duplicate", "error_count", "errors", "created_at",
                  "finished_at"]  # fmt: skip

    def get_next_steps(self, obj) -> str:
        return uploads.next_steps(obj)


class UploadRequestSerializer(serializers.Serializer):
    file = serializers.FileField()
    file_format = serializers.ChoiceField(choices=["auto", "jsonl", "json", "csv", "parquet", "txt"], default="auto")
    txt_mode = serializers.ChoiceField(choices=["line", "paragraph"], default="line")
    mapping = serializers.JSONField(required=False, help_text='e.g. {"instruction": "question", "output": "answer"}')
    columns = serializers.JSONField(
        required=False,
        help_text='Per column: a field, "extra" (kept in the record\'s extra data) or "ignore", e.g. '
        '{"question": "instruction", "source": "extra", "notes": "ignore"}. Columns not named keep the detected use.',
    )
    dry_run = serializers.BooleanField(
        default=False, help_text="Only preview: the detected columns, the first records, bad and duplicate rows."
    )

    def validate_mapping(self, value):
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ValidationError("mapping must be an object of target field → column name.")
        return value

    def validate_columns(self, value):
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ValidationError('columns must be an object of column name → field, "extra" or "ignore".')
        return value


class AccessRequestSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username", read_only=True)
    decided_by = serializers.CharField(source="decided_by.username", read_only=True, default=None)

    class Meta:
        model = AccessRequest
        fields = ["id", "user", "role", "message", "status", "decided_by", "decided_at", "created_at"]
        read_only_fields = ["status", "decided_at", "created_at"]


class MemberSerializer(serializers.Serializer):
    username = StrictCharField(min_length=1, max_length=150)
    role = serializers.ChoiceField(choices=Role.choices)


class MemberRequestSerializer(MemberSerializer):
    role = serializers.ChoiceField(choices=[c for c in Role.choices if c[0] != Role.OWNER])  # one owner: the creator


VOTE_REQUEST = {  # what VoteSerializer and the service check, as a schema: a rejection needs a reason
    "application/json": {
        "oneOf": [
            {"type": "object", "required": ["vote"], "properties": {
                "vote": {"type": "string", "enum": ["accept"]}, "reason": {"type": "string", "maxLength": 500},
                "malicious": {"type": "boolean"}}},
            {"type": "object", "required": ["vote", "reason"], "properties": {
                "vote": {"type": "string", "enum": ["reject"]},
                "reason": {"type": "string", "minLength": 1, "maxLength": 500}, "malicious": {"type": "boolean"}}},
        ]
    }
}  # fmt: skip


class VoteSerializer(serializers.Serializer):
    vote = serializers.ChoiceField(choices=["accept", "reject"])
    reason = StrictCharField(max_length=500, required=False, allow_blank=True, default="")
    malicious = StrictBooleanField(default=False)


class VersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = DatanetVersion
        fields = ["number", "size", "root", "created_at"]


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except services.DatanetError as exc:
        raise ServiceError(exc) from None


class DatanetViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):  # fmt: skip
    """Datanets you may see; records, uploads, members, requests, votes and versions under each."""

    serializer_class = DatanetSerializer
    throttle_scope = ""  # per action: uploads and verify have rates of their own (settings.REST_FRAMEWORK)
    lookup_field = "slug"
    permission_classes = [permissions.IsAuthenticatedOrReadOnly]  # reads are public where access.py says

    def get_queryset(self):
        qs = readable_by(self.request.user) if self.action == "list" else visible_to(self.request.user)
        return qs.select_related("owner").order_by("name")

    def get_object(self):
        return get_for(self.request.user, self.kwargs["slug"])

    def _datanet(self, action_: Action) -> Datanet:
        return get_for(self.request.user, self.kwargs["slug"], action_)

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        serializer.instance = _call(services.create_datanet, self.request.user, **data)

    def perform_update(self, serializer):
        self._datanet(Action.MANAGE)
        serializer.save()

    @extend_schema(responses=RecordSerializer(many=True))
    @action(detail=True, methods=["get"])
    def records(self, request, slug=None):
        datanet = self._datanet(Action.READ)
        qs = datanet.contributions.filter(status="accepted").select_related("contributor").order_by("log_index")
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(RecordSerializer(page, many=True).data)

    @extend_schema(
        parameters=[OpenApiParameter("status", str, enum=["pending", "accepted", "rejected"])],
        responses=ContributionSerializer(many=True),
    )
    @action(detail=True, methods=["get"])
    def contributions(self, request, slug=None):
        """Contributions in any status, for validators (the moderation queue)."""
        datanet = self._datanet(Action.VALIDATE)
        qs = datanet.contributions.select_related("contributor").order_by("pk")
        wanted = request.query_params.getlist("status")
        if len(wanted) > 1 or (wanted and wanted[0] not in Contribution.Status.values):
            raise ValidationError({"status": "Give one status: pending, accepted or rejected."})
        if wanted:
            qs = qs.filter(status=wanted[0])
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(ContributionSerializer(page, many=True).data)

    @extend_schema(request=VOTE_REQUEST, responses=ContributionSerializer)
    @action(detail=True, methods=["post"], url_path=r"contributions/(?P<contribution_id>\d+)/validations")
    def validate_contribution(self, request, slug=None, contribution_id=None):
        datanet = self._datanet(Action.VALIDATE)
        contribution = get_object_or_404(Contribution, pk=contribution_id, datanet=datanet)
        body = VoteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        d = body.validated_data
        row = _call(services.vote, request.user, contribution, d["vote"], d["reason"], d["malicious"])
        row.refresh_from_db()
        return Response(ContributionSerializer(row).data)

    @extend_schema(
        request={"multipart/form-data": UploadRequestSerializer},
        responses={
            201: UploadSerializer,
            202: UploadSerializer,
            200: OBJECT,
            422: {  # a report, or why not
                "anyOf": [{"$ref": "#/components/schemas/Upload"}, {"$ref": "#/components/schemas/Error"}]
            },
        },
    )
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser, FormParser], throttle_scope="uploads")
    def uploads(self, request, slug=None):
        """Upload a file. 201 with the report when stored (or 202 while a large file is parsed);
        422 with every bad row when nothing was stored. With dry_run: 200 and the preview, nothing stored."""
        datanet = self._datanet(Action.CONTRIBUTE)
        body = UploadRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        d = body.validated_data
        options = {"file_format": d["file_format"], "txt_mode": d["txt_mode"], "mapping": d.get("mapping") or {},
                   "columns": d.get("columns") or {}}  # fmt: skip
        if d["dry_run"]:
            return Response(_call(uploads.preview, request.user, datanet, d["file"].name, d["file"].read(), options))
        batch = _call(services.start_upload, request.user, datanet, d["file"].name, d["file"].read(), options)
        code = {"succeeded": 201, "failed": 422}.get(batch.status, 202)
        return Response(UploadSerializer(batch).data, status=code)

    @extend_schema(responses=UploadSerializer)
    @action(detail=True, methods=["get"], url_path=r"uploads/(?P<upload_id>\d+)")
    def upload_detail(self, request, slug=None, upload_id=None):
        datanet = self._datanet(Action.SEE)
        batch = get_object_or_404(UploadBatch, pk=upload_id, datanet=datanet)
        if batch.uploader_id != request.user.pk and not can(request.user, Action.MANAGE, datanet):
            raise NotFound()
        return Response(UploadSerializer(batch).data)

    @extend_schema(methods=["GET"], responses=AccessRequestSerializer(many=True))
    @extend_schema(methods=["POST"], request=AccessRequestSerializer, responses={201: AccessRequestSerializer})
    @action(detail=True, methods=["get", "post"], url_path="access-requests", pagination_class=None)
    def access_requests(self, request, slug=None):
        """GET: the owner sees every request, others their own. POST: ask for a role."""
        datanet = self._datanet(Action.SEE)
        if request.method == "POST":
            body = AccessRequestSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            d = body.validated_data
            req = _call(
                services.request_access, request.user, datanet, d.get("role", "contributor"), d.get("message", "")
            )
            return Response(AccessRequestSerializer(req).data, status=status.HTTP_201_CREATED)
        qs = datanet.access_requests.select_related("user", "decided_by")
        if not can(request.user, Action.MANAGE, datanet):
            qs = qs.filter(user=request.user) if request.user.is_authenticated else qs.none()
        return Response(AccessRequestSerializer(qs, many=True).data)

    @extend_schema(request=None, responses=AccessRequestSerializer, operation_id="datanets_access_requests_decide")
    @action(detail=True, methods=["post"], url_path=r"access-requests/(?P<request_id>\d+)/(?P<decision>approve|deny)")
    def decide(self, request, slug=None, request_id=None, decision=None):
        datanet = self._datanet(Action.MANAGE)
        req = get_object_or_404(AccessRequest, pk=request_id, datanet=datanet)
        req = _call(services.decide_request, request.user, req, decision == "approve")
        return Response(AccessRequestSerializer(req).data)

    @extend_schema(methods=["GET"], responses=MemberSerializer(many=True))
    @extend_schema(methods=["POST"], request=MemberRequestSerializer, responses={201: MemberSerializer})
    @extend_schema(
        methods=["DELETE"], responses={204: None},
        parameters=[OpenApiParameter("username", str, required=True, description="The member to remove.")],
    )  # fmt: skip
    @action(detail=True, methods=["get", "post", "delete"], pagination_class=None)
    def members(self, request, slug=None):
        """GET: the owner for anyone who may read the Datanet, every member and role for its members only;
        POST (set a role) and DELETE (?username=) for owners."""
        if request.method == "GET":
            datanet = self._datanet(Action.READ)
            rows = [{"username": datanet.owner.username, "role": "owner"}]
            memberships = Membership.objects.filter(datanet=datanet).select_related("user")
            if request.user == datanet.owner or memberships.filter(user_id=request.user.pk).exists():
                rows += [{"username": m.user.username, "role": m.role} for m in memberships]
            return Response(rows)
        datanet = self._datanet(Action.MANAGE)
        if request.method == "POST":
            body = MemberRequestSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            username = body.validated_data["username"]
        else:
            username = request.query_params.get("username")
            if username is None:
                raise ValidationError({"username": "Give the username of the member to remove: ?username=…"})
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise NotFound(f"No user named {username!r}.")
        if request.method == "DELETE":
            _call(services.remove_member, request.user, datanet, user)
            return Response(status=status.HTTP_204_NO_CONTENT)
        _call(services.set_member, request.user, datanet, user, body.validated_data["role"])
        return Response(body.validated_data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=VersionSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)
    def versions(self, request, slug=None):
        datanet = self._datanet(Action.READ)
        return Response(VersionSerializer(datanet.versions.all(), many=True).data)

    @extend_schema(parameters=[OpenApiParameter("version", VERSION_NUMBER, required=False)], responses={200: OBJECT})
    @action(detail=True, methods=["get"], url_path=r"records/(?P<record_id>\d+)/proof")
    def proof(self, request, slug=None, record_id=None):
        """Inclusion proof of a record in a version (default: the current one)."""
        datanet = self._datanet(Action.READ)
        record = get_object_or_404(Contribution, pk=record_id, datanet=datanet, status="accepted")
        version = self._version(datanet, request.query_params.get("version"))
        return Response(_call(services.inclusion, datanet, record, version))

    @extend_schema(
        parameters=[OpenApiParameter("from", VERSION_NUMBER, required=True), OpenApiParameter("to", VERSION_NUMBER)],
        responses={200: OBJECT},
    )
    @action(detail=True, methods=["get"], url_path="versions/consistency")
    def consistency(self, request, slug=None):
        """Consistency proof that version `from` is a prefix of version `to` (default: current)."""
        datanet = self._datanet(Action.READ)
        old = self._version(datanet, request.query_params.get("from"), required=True)
        new = self._version(datanet, request.query_params.get("to"))
        return Response(_call(services.consistency, datanet, old, new))

    @extend_schema(responses=dict)
    @action(detail=True, methods=["get"], throttle_scope="verify")
    def verify(self, request, slug=None):
        """Recompute every leaf and version root from the stored records."""
        datanet = self._datanet(Action.READ)
        problems = services.checked(datanet)
        return Response({"ok": not problems, "problems": problems})

    @staticmethod
    def _version(datanet, number, required: bool = False) -> DatanetVersion:
        if number in (None, ""):
            if required:
                raise ValidationError({"from": "Give a version number."})
            version = datanet.current_version
        else:
            if not str(number).isdigit():
                raise ValidationError({"version": "Version numbers are positive integers."})
            version = datanet.versions.filter(number=int(number)).first()
        if version is None:
            raise NotFound("No such version.")
        return version
