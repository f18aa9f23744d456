"""Replies as runs that outlive the request that started them."""

from functools import cache

from django.conf import settings

from .registry import LocalRunRegistry
from .run import ReplyIds, Run

__all__ = ["ReplyIds", "Run", "registry"]


@cache
def registry() -> LocalRunRegistry:
    """This process's run registry: shared through Redis when REDIS_URL is set."""
    if settings.REDIS_URL:
        from .shared import RedisRunRegistry

        return RedisRunRegistry(settings.REDIS_URL)
    return LocalRunRegistry()
