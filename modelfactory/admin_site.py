"""The admin site: staff as usual, plus Datanet owners who are not staff.

Owners get an admin scoped to their own Datanets (datanets/admin.py); every
ModelAdmin there decides per object through datanets.access.
"""

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, resolve_url
from django.urls import path
from django.utils.http import url_has_allowed_host_and_scheme, urlencode

from datanets.access import managed_by


def manages_a_datanet(user) -> bool:
    return user.is_authenticated and managed_by(user).exists()


class ModelFactoryAdminSite(admin.AdminSite):
    site_header = "ModelFactory admin"
    site_title = "ModelFactory admin"

    def has_permission(self, request):
        user = request.user
        return user.is_active and (user.is_staff or manages_a_datanet(user))

    def login(self, request, extra_context=None):
        """No password form of its own: signing in goes through the site's login page, with its
        rate limit (10 failures a minute per address, 5 per 5 minutes per account), then comes back."""
        wanted = request.GET.get(REDIRECT_FIELD_NAME) or resolve_url("admin:index")
        if not url_has_allowed_host_and_scheme(wanted, {request.get_host()}, request.is_secure()):
            wanted = resolve_url("admin:index")
        if request.user.is_authenticated:
            if not self.has_permission(request):
                raise PermissionDenied("This account may not use the admin.")
            return redirect(wanted)
        return redirect(f"{resolve_url(settings.LOGIN_URL)}?{urlencode({REDIRECT_FIELD_NAME: wanted})}")

    def get_urls(self):
        """The "view on site" shortcut (r/<content type>/<id>/) is for staff only: it redirects to any
        object's page by id, so a Datanet owner counting ids would learn every private Datanet's address."""
        urls = super().get_urls()
        shortcut = next(u for u in urls if getattr(u, "name", None) == "view_on_site")

        def staff_shortcut(request, *args, **kwargs):
            if not (request.user.is_active and request.user.is_staff):
                raise Http404("No such page.")
            return shortcut.callback(request, *args, **kwargs)

        rest = [u for u in urls if u is not shortcut]
        return [path(str(shortcut.pattern), staff_shortcut, name="view_on_site"), *rest]
