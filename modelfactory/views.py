"""Site-wide pages: home, health check and friendly error pages."""

from __future__ import annotations

from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET


@require_GET
def home(request):
    return render(request, "home.html")


@require_GET
def healthz(request):
    """Liveness for load balancers: the database answers."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


def _error_page(request, status: int, title: str, text: str):
    if request.path.startswith("/api/") or request.path.startswith("/v1/"):
        return JsonResponse({"detail": text}, status=status)
    return render(request, "error.html", {"status": status, "title": title, "text": text}, status=status)


def bad_request(request, exception=None):
    return _error_page(request, 400, "Bad request", "The request could not be understood.")


def permission_denied(request, exception=None):
    return _error_page(request, 403, "Not allowed", "You do not have permission to see this page.")


def page_not_found(request, exception=None):
    return _error_page(request, 404, "Not found", "There is nothing here. Check the address.")


def server_error(request):
    return _error_page(request, 500, "Something went wrong", "The error was logged; please try again later.")


def csrf_failure(request, reason=""):
    return _error_page(
        request, 403, "Form expired", "The form was stale or came from another site. Reload the page and try again."
    )
