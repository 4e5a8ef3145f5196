"""Django admin for Datanet owners: each owner sees and edits only what they manage.

Querysets are scoped with datanets.access.managed_by and per-object permissions
come from the same module, so an owner who is not staff-wide still gets a
working admin for their own Datanets (see modelfactory.admin_site).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.widgets import ForeignKeyRawIdWidget

from datanets import services
from datanets.access import Action, can, managed_by
from datanets.models import (
    AccessRequest,
    Contribution,
    ContributorStanding,
    Datanet,
    DatanetVersion,
    Membership,
    UploadBatch,
)


class OwnerScopedAdmin(admin.ModelAdmin):
    """Superusers see everything; owners see rows of Datanets they manage; others nothing."""

    datanet_path = "datanet"

    def _datanet_of(self, obj):
        return obj if isinstance(obj, Datanet) else getattr(obj, "datanet", None)

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        managed = managed_by(request.user)
        return (
            qs.filter(pk__in=managed) if self.model is Datanet else qs.filter(**{f"{self.datanet_path}__in": managed})
        )

    def _may(self, request, obj=None) -> bool:
        if request.user.is_superuser:
            return True
        if obj is None:
            return managed_by(request.user).exists()
        datanet = self._datanet_of(obj)
        return datanet is not None and can(request.user, Action.MANAGE, datanet)

    def has_module_permission(self, request):
        return self._may(request)

    def has_view_permission(self, request, obj=None):
        return self._may(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._may(request, obj)

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_add_permission(self, request):
        return request.user.is_superuser

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "datanet" and not request.user.is_superuser:
            kwargs["queryset"] = managed_by(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Datanet)
class DatanetAdmin(OwnerScopedAdmin):
    list_display = ("name", "slug", "visibility", "schema", "owner", "created_at")
    list_filter = ("visibility", "schema")
    search_fields = ("name", "slug", "description")
    readonly_fields = ("slug", "schema", "owner", "created_at", "updated_at")


class KnownPeopleRawIdWidget(ForeignKeyRawIdWidget):
    """The raw-id user field, labelled only for people the viewing owner already knows (members of, and
    access requesters to, the Datanets they manage): typing ids must not list every user's name."""

    def __init__(self, rel, admin_site, viewer):
        super().__init__(rel, admin_site)
        self.viewer = viewer

    def label_and_url_for_value(self, value):
        known = Membership.objects.filter(datanet__in=managed_by(self.viewer), user_id=value).exists() or (
            AccessRequest.objects.filter(datanet__in=managed_by(self.viewer), user_id=value).exists()
        )
        return super().label_and_url_for_value(value) if known else ("", "")


@admin.register(Membership)
class MembershipAdmin(OwnerScopedAdmin):
    list_display = ("datanet", "user", "role", "created_at")
    list_filter = ("role",)
    search_fields = ("user__username", "datanet__name")
    raw_id_fields = ("user",)
    readonly_fields = ("added_by",)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user" and not request.user.is_superuser:
            kwargs["widget"] = KnownPeopleRawIdWidget(db_field.remote_field, self.admin_site, request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_add_permission(self, request):
        return self._may(request)

    def has_delete_permission(self, request, obj=None):
        return self._may(request, obj)


@admin.action(description="Approve selected requests")
def approve_requests(modeladmin, request, queryset):
    _decide(request, queryset, True)


@admin.action(description="Deny selected requests")
def deny_requests(modeladmin, request, queryset):
    _decide(request, queryset, False)


def _decide(request, queryset, approve: bool):
    done = 0
    for req in queryset.select_related("datanet", "user"):
        try:
            services.decide_request(request.user, req, approve)
            done += 1
        except services.DatanetError as exc:
            messages.warning(request, f"{req}: {exc}")
    messages.success(request, f"{done} request(s) {'approved' if approve else 'denied'}.")


@admin.register(AccessRequest)
class AccessRequestAdmin(OwnerScopedAdmin):
    list_display = ("datanet", "user", "role", "status", "created_at", "decided_by")
    list_filter = ("status", "role")
    readonly_fields = ("datanet", "user", "role", "message", "status", "decided_by", "decided_at", "created_at")
    actions = [approve_requests, deny_requests]


@admin.action(description="Accept selected contributions")
def accept_contributions(modeladmin, request, queryset):
    _moderate(request, queryset, "accept", "")


@admin.action(description="Reject selected contributions (reason: rejected in admin)")
def reject_contributions(modeladmin, request, queryset):
    _moderate(request, queryset, "reject", "Rejected in the admin panel.")


def _moderate(request, queryset, decision: str, reason: str):
    by_datanet: dict = {}
    for row in queryset.filter(status="pending").select_related("datanet"):
        by_datanet.setdefault(row.datanet, []).append(row.pk)
    for datanet, ids in by_datanet.items():
        try:
            services.decide_many(request.user, datanet, ids, decision, reason)
            messages.success(request, f"{datanet}: {len(ids)} contribution(s) {decision}ed.")
        except services.DatanetError as exc:
            messages.warning(request, f"{datanet}: {exc}")


@admin.register(Contribution)
class ContributionAdmin(OwnerScopedAdmin):
    list_display = ("id", "datanet", "contributor", "status", "source_file", "source_row", "created_at")
    list_filter = ("status",)
    search_fields = ("content_hash", "contributor__username")
    # Accepted records are in the Merkle log: the admin never edits their content.
    readonly_fields = [f.name for f in Contribution._meta.fields]
    actions = [accept_contributions, reject_contributions]


@admin.register(UploadBatch)
class UploadBatchAdmin(OwnerScopedAdmin):
    list_display = ("filename", "datanet", "uploader", "status", "rows_added", "error_count", "created_at")
    list_filter = ("status",)
    readonly_fields = [f.name for f in UploadBatch._meta.fields]


@admin.register(DatanetVersion)
class DatanetVersionAdmin(OwnerScopedAdmin):
    list_display = ("datanet", "number", "size", "root", "created_at")
    readonly_fields = ("datanet", "number", "size", "root", "created_by", "created_at")


@admin.register(ContributorStanding)
class ContributorStandingAdmin(OwnerScopedAdmin):
    list_display = ("datanet", "user", "accepted", "rejected", "malicious", "reputation")
    readonly_fields = ("datanet", "user", "accepted", "rejected", "malicious")
