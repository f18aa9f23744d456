"""Who is asking: a browser session (with CSRF) or a script's Bearer API key."""

from __future__ import annotations

from datetime import timedelta
from importlib import import_module
from types import SimpleNamespace

from django.conf import settings
from django.contrib.auth import get_user
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone

from chat.errors import Forbidden, Unauthorized
from chat.models import ApiKey, hash_key, single

# Writing last_used_at on every request would turn each read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class _CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request, reason):
        return reason


def user_for_key(raw_key: str):
    """The active user a Bearer key belongs to, or None."""
    key = single(
        ApiKey.objects.active()
        .select_related("user")
        .filter(key_hash=hash_key(raw_key), user__is_active=True)
    )
    if key is None:
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key.user


def bearer_user(request):
    """The user whose key is in the `Authorization: Bearer` header; raises Unauthorized."""
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    user = user_for_key(raw.strip()) if scheme.lower() == "bearer" and raw.strip() else None
    if user is None:
        raise Unauthorized("The API key is missing, malformed or revoked.", code="invalid_api_key")
    return user


def authenticate(request):
    """The user behind `request`, checking CSRF for sessions; raises Unauthorized/Forbidden."""
    if request.headers.get("Authorization"):
        return bearer_user(request)
    user = request.user
    if not user.is_authenticated:
        raise Unauthorized("Sign in, or send 'Authorization: Bearer <key>'.")
    check = _CsrfCheck(lambda _request: None)
    check.process_request(request)
    reason = check.process_view(request, None, (), {})
    if reason:
        raise Forbidden(f"CSRF check failed: {reason}", code="csrf_failed")
    return user


def session_user(session_key: str | None):
    """Who the session `session_key` is signed in as now, read afresh from its store.

    AnonymousUser once it has logged out or expired, its user has been deactivated, or
    the password has changed since (Django's own checks, as for any request).
    """
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    return get_user(SimpleNamespace(session=store))
