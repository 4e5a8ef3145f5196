"""Create the provider's users and the consumer's OAuth application (run once per provider)."""

import os

import django

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from oauth2_provider.models import Application  # noqa: E402

for name in ("dana", "carol"):
    User.objects.create_user(name, f"{name}@example.com", "provider-password")
Application.objects.create(
    name="ModelFactory",
    client_id=os.environ["OP_CLIENT_ID"],
    client_secret=os.environ["OP_CLIENT_SECRET"],
    client_type=Application.CLIENT_CONFIDENTIAL,
    authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
    # No port: for loopback IPs DOT accepts any port (RFC 8252), the consumer's is random.
    redirect_uris="http://127.0.0.1/accounts/oidc/oidc/login/callback/",
    algorithm=Application.RS256_ALGORITHM,
    skip_authorization=True,
)
