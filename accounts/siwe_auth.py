"""Sign-In with Ethereum (EIP-4361): nonces, verification, wallet login and linking.

Nonces are issued by the server, stored, and consumed by a conditional UPDATE,
so each signed message works once. Every refusal raises WalletAuthError with a
message a person can act on; views turn it into a 4xx.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import SiweNonce, Wallet

if TYPE_CHECKING:
    import siwe

MAX_MESSAGE_CHARS = 4096
SIGNATURE_RE = re.compile(r"^0x[0-9a-fA-F]{130}$")
STATEMENT = "Sign in to ModelFactory."


class WalletAuthError(ValueError):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def issue_nonce() -> SiweNonce:
    import siwe  # siwe pulls in web3: load it on first use, not at web start-up

    now = timezone.now()
    SiweNonce.objects.filter(expires_at__lt=now - timedelta(days=1)).delete()  # keep the table small
    return SiweNonce.objects.create(
        nonce=siwe.generate_nonce(), expires_at=now + timedelta(seconds=settings.SIWE_NONCE_TTL_SECONDS)
    )


def checksum_address(value) -> str | None:
    """EIP-55 form of an address, None for None; ValueError for anything else."""
    if value is None:
        return None
    from eth_utils import to_checksum_address

    if not isinstance(value, str) or not re.fullmatch(r"0x[0-9a-fA-F]{40}", value):
        raise ValueError("not an address")
    return to_checksum_address(value)


def expected_domain(request) -> str:
    return settings.SIWE_DOMAIN or request.get_host()


def verify_message(request, message_text: str, signature: str) -> siwe.SiweMessage:
    """Check a signed SIWE message and consume its nonce. Returns the parsed message."""
    import siwe

    if not isinstance(message_text, str) or not isinstance(signature, str) or not message_text or not signature:
        raise WalletAuthError("Send the signed message and its signature.")
    if len(message_text) > MAX_MESSAGE_CHARS:
        raise WalletAuthError("The sign-in message is too long.")
    if not SIGNATURE_RE.match(signature):
        raise WalletAuthError("The signature is not a 65-byte hex string.")
    try:
        message = siwe.SiweMessage.from_message(message_text)
    except Exception:  # the abnf parser and pydantic raise many types for bad text
        raise WalletAuthError("This is not a valid Sign-In with Ethereum message.") from None
    if not 0 < int(message.chain_id) < 2**63:  # EIP-155 ids are stored as 64-bit numbers
        raise WalletAuthError("The chain ID in this message is not one a wallet uses.")

    domain = expected_domain(request)
    if message.domain != domain:
        raise WalletAuthError(
            f"This message was made for {message.domain!r}, not {domain!r}. Sign in again from this site."
        )
    record = SiweNonce.objects.filter(nonce=message.nonce).first()
    if record is None:
        raise WalletAuthError("This message's nonce was not issued by this site. Start the sign-in again.")
    if record.used_at is not None:
        raise WalletAuthError("This sign-in message was already used. Start the sign-in again.")
    if record.is_expired:
        raise WalletAuthError("This sign-in request has expired. Start the sign-in again.")

    try:
        message.verify(signature, domain=domain, nonce=record.nonce, timestamp=timezone.now())
    except siwe.ExpiredMessage:
        raise WalletAuthError("This sign-in message has expired. Start the sign-in again.") from None
    except siwe.NotYetValidMessage:
        raise WalletAuthError("This sign-in message is not valid yet.") from None
    except siwe.InvalidSignature:
        raise WalletAuthError("The signature does not match the address in the message.") from None
    except siwe.VerificationError:
        raise WalletAuthError("The sign-in message could not be verified.") from None

    # Consume only after the signature checks out, so a forged request cannot burn a
    # user's nonce; the conditional UPDATE makes two racing replays yield one success.
    consumed = SiweNonce.objects.filter(pk=record.pk, used_at__isnull=True).update(used_at=timezone.now())
    if consumed != 1:
        raise WalletAuthError("This sign-in message was already used. Start the sign-in again.")
    return message


def user_for_wallet(message: siwe.SiweMessage):
    """The user owning the message's address; a new account for a wallet seen first."""
    wallet = Wallet.objects.select_related("user").filter(address=message.address).first()
    if wallet is not None:
        if not wallet.user.is_active:
            raise WalletAuthError("This account is disabled.", status=403)
        Wallet.objects.filter(pk=wallet.pk).update(last_login_at=timezone.now())
        return wallet.user
    User = get_user_model()
    with transaction.atomic():
        username = _free_username(f"{message.address[:6]}{message.address[-4:]}".lower())
        user = User.objects.create_user(username=username)  # no password: the wallet is the credential
        Wallet.objects.create(
            user=user, address=message.address, chain_id=message.chain_id, last_login_at=timezone.now()
        )
    return user


def link_wallet(user, message: siwe.SiweMessage) -> Wallet:
    existing = Wallet.objects.filter(address=message.address).first()
    if existing is not None:
        if existing.user_id == user.pk:
            return existing
        raise WalletAuthError("This wallet is already linked to another account.", status=409)
    try:
        with transaction.atomic():
            return Wallet.objects.create(user=user, address=message.address, chain_id=message.chain_id)
    except IntegrityError:
        raise WalletAuthError("This wallet is already linked to another account.", status=409) from None


def _free_username(base: str) -> str:
    User = get_user_model()
    candidate, n = base, 1
    while User.objects.filter(username=candidate).exists():
        n += 1
        candidate = f"{base}-{n}"
    return candidate
