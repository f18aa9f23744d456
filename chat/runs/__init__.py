"""Replies as runs that outlive the request that started them."""

from functools import cache

from .eventlog import event_log
from .registry import RunRegistry
from .run import ReplyIds, Run

__all__ = ["ReplyIds", "Run", "registry"]


@cache
def registry() -> RunRegistry:
    """This process's run registry, over its event log (shared through Redis if REDIS_URL)."""
    return RunRegistry(event_log())
