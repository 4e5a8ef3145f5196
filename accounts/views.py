"""Profile page (API keys, wallets) and the Sign-In with Ethereum endpoints."""

from __future__ import annotations

import json

from allauth.account import views as allauth_views
from allauth.core import ratelimit
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts import siwe_auth
from accounts.models import ApiKey
from accounts.services import ApiKeyError, create_api_key, revoke_api_key

MAX_JSON_BODY = 16 * 1024


def _profile(request, new_key: dict | None = None):
    keys = ApiKey.objects.filter(user=request.user)
    context = {"keys": keys, "new_key": new_key, "wallets": request.user.wallets.all()}
    response = render(request, "accounts/profile.html", context)
    if new_key:
        response["Cache-Control"] = "no-store"  # the raw key is in this page only: not in any cache
    return response


@login_required
@require_GET
def profile(request):
    return _profile(request)


@login_required
@require_POST
def api_key_create(request):
    """The new key is shown once, in this response; only its hash is kept (never the session)."""
    try:
        key, raw = create_api_key(request.user, request.POST.get("name", ""))
    except ApiKeyError as exc:
        messages.error(request, str(exc))
        return redirect("profile")
    messages.success(request, f"Key “{key.name}” created. Copy it now: it will not be shown again.")
    return _profile(request, {"name": key.name, "key": raw})


@login_required
@require_POST
def api_key_revoke(request, key_id: int):
    try:
        key = revoke_api_key(request.user, key_id)
    except ApiKeyError as exc:
        messages.error(request, str(exc))
        return redirect("profile")
    messages.success(request, f"Key “{key.name}” revoked.")
    return redirect("profile")


def _error(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _json_object(request) -> dict:
    if len(request.body) > MAX_JSON_BODY:
        raise siwe_auth.WalletAuthError("Request body too large.", status=413)
    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        raise siwe_auth.WalletAuthError("Request body must be JSON.") from None
    if not isinstance(data, dict):
        raise siwe_auth.WalletAuthError("Request body must be a JSON object.")
    return data


def _signed_payload(request) -> tuple[str, str]:
    data = _json_object(request)
    return data.get("message"), data.get("signature")


@require_POST
def wallet_nonce(request):
    """A fresh nonce plus the fields the browser needs to compose the message."""
    address = None
    if request.content_type == "application/json" and request.body:
        try:
            address = siwe_auth.checksum_address(_json_object(request).get("address"))
        except siwe_auth.WalletAuthError as exc:
            return _error(str(exc), exc.status)
        except ValueError:
            return _error("That is not an Ethereum address.")
    if not ratelimit.consume(request, action="siwe_nonce"):  # ACCOUNT_RATE_LIMITS, per client address
        response = _error("Too many wallet sign-in attempts from this address; wait a minute and try again.", 429)
        response["Retry-After"] = "60"
        return response
    nonce = siwe_auth.issue_nonce()
    return JsonResponse(
        {
            "nonce": nonce.nonce,
            "address": address,
            "domain": siwe_auth.expected_domain(request),
            "uri": request.build_absolute_uri("/"),
            "statement": siwe_auth.STATEMENT,
            "expires_at": nonce.expires_at.isoformat(),
        }
    )


@require_POST
def wallet_login(request):
    try:
        message = siwe_auth.verify_message(request, *_signed_payload(request))
        user = siwe_auth.user_for_wallet(message)
    except siwe_auth.WalletAuthError as exc:
        return _error(str(exc), exc.status)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return JsonResponse({"ok": True, "username": user.get_username(), "redirect": settings.LOGIN_REDIRECT_URL})


@require_POST
def wallet_link(request):
    if not request.user.is_authenticated:
        return _error("Sign in first, then link your wallet.", 401)
    try:
        message = siwe_auth.verify_message(request, *_signed_payload(request))
        wallet = siwe_auth.link_wallet(request.user, message)
    except siwe_auth.WalletAuthError as exc:
        return _error(str(exc), exc.status)
    messages.success(request, f"Wallet {wallet.address} linked.")
    return JsonResponse({"ok": True, "address": wallet.address})


class LoginView(allauth_views.LoginView):
    """allauth's login, answering a refused sign-in with 400 rather than 200."""

    def form_invalid(self, form):
        response = super().form_invalid(form)
        response.status_code = 400
        return response
