"""REST API plumbing shared by every app: the error shape and the v1 URL list."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions
from rest_framework.exceptions import APIException
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc, context):
    """DRF's handler, plus Django's own ValidationError as a 400 instead of a 500."""
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    return drf_exception_handler(exc, context)


class ServiceError(APIException):
    """A service-layer refusal (DatanetError, TrainingError…) as an API error: its status, and its
    message under the form field it names, if any."""

    def __init__(self, exc: Exception):
        self.status_code = getattr(exc, "status", 400)
        self.wait = getattr(exc, "retry_after", None)  # DRF's handler turns it into Retry-After
        field = getattr(exc, "field", None)
        super().__init__(detail={field: str(exc)} if field else str(exc))
