"""API keys, linked wallets and Sign-In with Ethereum nonces."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models
from django.utils import timezone

API_KEY_PREFIX = "mf_"


def hash_key(raw_key: str) -> str:
    # Keys carry 256 random bits, so a fast hash is enough (as GitHub tokens do);
    # only the hash is stored.
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiKeyQuerySet(models.QuerySet):
    def active(self):
        return self.filter(revoked_at__isnull=True)


class ApiKey(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="First characters of the key, shown to tell keys apart.")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class Wallet(models.Model):
    """An Ethereum address proven (by a SIWE signature) to belong to a user."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="wallets")
    address = models.CharField(max_length=42, unique=True, help_text="EIP-55 checksummed address.")
    chain_id = models.PositiveBigIntegerField(default=1)  # EIP-155 ids exceed 32 bits (eth-tester: 131277322940537)
    linked_at = models.DateTimeField(auto_now_add=True)
    last_login_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["linked_at"]

    def __str__(self) -> str:
        return self.address


class SiweNonce(models.Model):
    """A single-use nonce handed out for one SIWE message."""

    nonce = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.nonce

    @property
    def is_expired(self) -> bool:
        return timezone.now() >= self.expires_at


# Limits one person lives under; each is a setting of the same name (the deployment's default).
QUOTA_CHOICES = [
    ("TRAINING_MAX_ACTIVE_JOBS", "Training jobs waiting or running at once"),
    ("TRAINING_MAX_JOB_TOKENS", "Tokens one training job may train on"),
    ("TRAINING_GPU_SECONDS_PER_DAY", "Seconds of training per 24 hours"),
    ("UPLOAD_BYTES_PER_DAY", "Bytes uploaded per 24 hours"),
    ("UPLOAD_ROWS_PER_DAY", "Records added by uploads per 24 hours"),
    ("CHAT_MAX_CONCURRENT", "Chat answers being written at once"),
    ("CHAT_TOKENS_PER_MINUTE", "Chat tokens (question and answer) per minute"),
]


class QuotaOverride(models.Model):
    """One person's limit set by staff in place of the deployment's default (raised, or lowered)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="quota_overrides")
    name = models.CharField(max_length=40, choices=QUOTA_CHOICES)
    value = models.PositiveBigIntegerField(help_text="This person's limit, in the unit the limit names.")
    note = models.CharField(max_length=200, blank=True, help_text="Why, for the next staff member.")
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["user_id", "name"]
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="one_override_per_limit")]

    def __str__(self) -> str:
        return f"{self.user} · {self.get_name_display()}: {self.value:,}"
