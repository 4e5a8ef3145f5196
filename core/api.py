"""REST API plumbing shared by every app: the error shape and the v1 URL list."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.http import Http404
from rest_framework import exceptions, serializers
from rest_framework.exceptions import APIException
from rest_framework.pagination import PageNumberPagination
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


class Conflict(APIException):
    """409: the request is well formed but conflicts with the current state (a field fixed once set…)."""

    status_code = 409
    default_detail = "This conflicts with the current state."
    default_code = "conflict"


class Pagination(PageNumberPagination):
    """DRF's page numbers, strictly: `page` is one whole number from 1; anything else is 404 "Invalid
    page." (as a page past the end is), never silently page 1."""

    def get_page_number(self, request, paginator):
        values = request.query_params.getlist(self.page_query_param)
        if not values:
            return 1
        if len(values) > 1 or not values[0].isdigit() or values[0].startswith("0"):
            raise exceptions.NotFound("Invalid page: give one whole number from 1.")
        return values[0]


class _TextOnly:
    """Text, and only text: DRF's text fields also take a number and make it a string; the schema says
    string, so a number is a 400 here."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(_TextOnly, serializers.CharField):
    pass


class StrictSlugField(_TextOnly, serializers.SlugField):
    pass


class StrictBooleanField(serializers.BooleanField):
    """true or false, not "yes", 1 or "on" (which DRF's BooleanField also takes): JSON bodies only."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictModelSerializer(serializers.ModelSerializer):
    """A ModelSerializer whose text fields are StrictCharField."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: StrictCharField,
        models.TextField: StrictCharField,
        models.SlugField: StrictSlugField,
    }


# Raw OpenAPI schemas for responses that are plain JSON (not serializers): one object, a list of them.
OBJECT = {"type": "object", "additionalProperties": {}}
OBJECTS = {"type": "array", "items": OBJECT}
