"""`Authorization: Bearer <API key>` for the REST API (and the OpenAI-compatible API)."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from accounts.services import user_for_api_key


def bearer_token(header: str) -> str | None:
    """The token of an `Authorization: Bearer …` header; None if it is another scheme."""
    parts = header.split()
    if not parts or parts[0].lower() != "bearer":
        return None
    if len(parts) != 2:
        raise exceptions.AuthenticationFailed("Malformed Authorization header; use 'Bearer <API key>'.")
    return parts[1]


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        token = bearer_token(authentication.get_authorization_header(request).decode("latin-1"))
        if token is None:
            return None
        user = user_for_api_key(token)
        if user is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        return user, token

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An API key from your profile page."}
