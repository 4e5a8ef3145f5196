from django.contrib import admin

from accounts.models import ApiKey, QuotaOverride, SiweNonce, Wallet


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "user__username", "prefix")
    readonly_fields = ("prefix", "key_hash", "created_at", "last_used_at")


@admin.register(Wallet)
class WalletAdmin(admin.ModelAdmin):
    list_display = ("address", "user", "chain_id", "linked_at", "last_login_at")
    search_fields = ("address", "user__username")


@admin.register(SiweNonce)
class SiweNonceAdmin(admin.ModelAdmin):
    list_display = ("nonce", "created_at", "expires_at", "used_at")


@admin.register(QuotaOverride)
class QuotaOverrideAdmin(admin.ModelAdmin):
    """Staff raise (or lower) one person's limit; everyone else has the deployment's defaults."""

    list_display = ("user", "name", "value", "note", "set_by", "updated_at")
    list_filter = ("name",)
    search_fields = ("user__username", "note")
    raw_id_fields = ("user",)
    readonly_fields = ("set_by", "updated_at")

    def _staff(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_staff

    has_module_permission = has_view_permission = has_add_permission = _staff
    has_change_permission = has_delete_permission = _staff

    def save_model(self, request, obj, form, change):
        obj.set_by = request.user
        super().save_model(request, obj, form, change)
