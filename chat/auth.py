"""Who is asking: a browser session (with CSRF) or a script's Bearer API key."""

from __future__ import annotations

from datetime import timedelta
from importlib import import_module
from types import SimpleNamespace

from django.conf import settings
from django.contrib.auth import get_user, get_user_model
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone

from chat import statements
from chat.errors import Forbidden, Unauthorized
from chat.models import ApiKey, hash_key

# Writing last_used_at on every request would turn each read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# The key's owner, and whether its last use is to be stamped again.
KEY = (
    "SELECT {user_id}, {id}, ({last_used_at} IS NULL OR {last_used_at} < %s) FROM {table} "
    "WHERE {key_hash} = %s AND {revoked_at} IS NULL"
)
# The owner's fields every request may use; any other (their times) loads on first use.
USER_FIELDS = (
    "id", "password", "is_superuser", "username", "first_name", "last_name", "email",
    "is_staff", "is_active",
)  # fmt: skip


class _CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request, reason):
        return reason


def user_for_key(raw_key: str):
    """The active user a Bearer key belongs to, or None."""
    now = timezone.now()
    stale = statements.value(ApiKey, "last_used_at", now - LAST_USED_RESOLUTION)
    found = statements.rows(ApiKey, KEY, [stale, hash_key(raw_key)])
    if not found:
        return None
    [(user_id, key_id, stamp)] = found
    where = "{id} = %s AND {is_active} = %s"
    user = next(iter(statements.fetch(get_user_model(), USER_FIELDS, where, [user_id, True])), None)
    if user is not None and stamp:
        statements.update_where(ApiKey, {"last_used_at": now}, "{id} = %s", [key_id])
    return user


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
