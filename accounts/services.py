"""Account workflows shared by pages, the API and management commands."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from accounts.models import API_KEY_PREFIX, ApiKey, hash_key

MAX_KEYS_PER_USER = 50


class ApiKeyError(ValueError):
    """A request about API keys that cannot be honoured; the message is for people."""


def create_api_key(user, name: str) -> tuple[ApiKey, str]:
    """Create a key and return it with the raw secret, which is never stored."""
    name = (name or "").strip()
    if not name:
        raise ApiKeyError("Give the key a name, e.g. 'laptop' or 'CI'.")
    if len(name) > 100:
        raise ApiKeyError("Key names are at most 100 characters.")
    with transaction.atomic():
        # Lock the user's row so two parallel requests cannot both pass the limit.
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        if ApiKey.objects.filter(user=user).active().count() >= MAX_KEYS_PER_USER:
            raise ApiKeyError(f"You already have {MAX_KEYS_PER_USER} active keys; revoke one first.")
        raw = API_KEY_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey.objects.create(user=user, name=name, prefix=raw[:10], key_hash=hash_key(raw))
    return key, raw


def revoke_api_key(user, key_id: int) -> ApiKey:
    key = ApiKey.objects.filter(user=user, pk=key_id).first()
    if key is None:
        raise ApiKeyError("No such API key.")
    if key.revoked_at is None:
        ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        key.refresh_from_db()
    return key


def user_for_api_key(raw: str):
    """The active user a raw key belongs to, or None for unknown or revoked keys."""
    if not raw or not raw.startswith(API_KEY_PREFIX) or len(raw) > 200:
        return None
    key = ApiKey.objects.select_related("user").filter(key_hash=hash_key(raw)).first()
    if key is None or not key.is_active or not key.user.is_active:
        return None
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)  # at most once a minute
    return key.user
