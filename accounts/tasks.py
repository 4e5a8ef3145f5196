from celery import shared_task
from django.utils import timezone

from accounts.models import SiweNonce


@shared_task(name="accounts.purge_expired_nonces")
def purge_expired_nonces() -> int:
    """Delete SIWE nonces that can no longer be used; returns how many."""
    deleted, _ = SiweNonce.objects.filter(expires_at__lt=timezone.now()).delete()
    return deleted
