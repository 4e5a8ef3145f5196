"""The admin site: staff as usual, plus Datanet owners who are not staff.

Owners get an admin scoped to their own Datanets (datanets/admin.py); every
ModelAdmin there decides per object through datanets.access.
"""

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm

from datanets.access import managed_by


def manages_a_datanet(user) -> bool:
    return user.is_authenticated and managed_by(user).exists()


class OwnerAuthenticationForm(AdminAuthenticationForm):
    def confirm_login_allowed(self, user):
        if user.is_active and not user.is_staff and manages_a_datanet(user):
            return
        super().confirm_login_allowed(user)


class ModelFactoryAdminSite(admin.AdminSite):
    site_header = "ModelFactory admin"
    site_title = "ModelFactory admin"
    login_form = OwnerAuthenticationForm

    def has_permission(self, request):
        user = request.user
        return user.is_active and (user.is_staff or manages_a_datanet(user))
