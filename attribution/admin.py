"""Admin: staff see everything; attribution rows are written by workers, so read-only."""

from django.contrib import admin

from attribution import anchoring
from attribution.models import Anchor, RewardEntry, RewardEpoch, TrainingAttribution


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff


@admin.register(Anchor)
class AnchorAdmin(ReadOnly):
    list_display = ("ref", "status", "root", "tx_hash", "block_number", "attempts", "created_at")
    list_filter = ("kind", "status")
    actions = ["retry"]

    @admin.action(description="Retry sending the selected pending anchors")
    def retry(self, request, queryset):
        for anchor in queryset.filter(status=Anchor.Status.PENDING):
            anchoring.schedule(anchor.pk)


@admin.register(RewardEpoch)
class RewardEpochAdmin(ReadOnly):
    list_display = ("number", "status", "pool", "distributed", "withheld", "answers", "root")


@admin.register(RewardEntry)
class RewardEntryAdmin(ReadOnly):
    list_display = ("epoch", "contributor", "influence", "reputation", "gross", "penalty", "amount")


@admin.register(TrainingAttribution)
class TrainingAttributionAdmin(ReadOnly):
    list_display = ("job", "status", "method", "seconds", "created_at")
