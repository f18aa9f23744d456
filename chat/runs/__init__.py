"""Replies as runs that outlive the request that started them."""

from functools import cache

from .registry import LocalRunRegistry
from .run import ReplyIds, Run

__all__ = ["ReplyIds", "Run", "registry"]


@cache
def registry() -> LocalRunRegistry:
    """This process's run registry."""
    return LocalRunRegistry()
