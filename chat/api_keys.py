"""API keys as their owner manages them: list, issue, revoke."""

from __future__ import annotations

from django.utils import timezone

from chat.errors import NotFound
from chat.models import ApiKey


def keys_of(user):
    """`user`'s keys still in use, newest first."""
    return ApiKey.objects.for_user(user).active().order_by("-created_at", "-id")


def issue_key(user, name: str = "") -> tuple[ApiKey, str]:
    """A new key for `user`; the raw key is returned this once and never stored."""
    return ApiKey.issue(user, name=name.strip())


def revoke_key(user, key_id: int) -> ApiKey:
    """Stop `user`'s key from working; NotFound for anyone else's, or one already revoked."""
    key = keys_of(user).filter(pk=key_id).first()
    if key is None:
        raise NotFound("No such key.")
    key.revoked_at = timezone.now()
    key.save(update_fields=["revoked_at"])
    return key
