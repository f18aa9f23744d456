"""Limits per user, checked in one place every door passes (`replies.start_reply`).

Concurrent replies and replies per minute are slots from a `Limiter` (in memory, or in
Redis when REDIS_URL is set); the day's output tokens come from the `DailyUsage` ledger,
which each reply adds to as it ends. Staff can give a user limits of their own.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from functools import cache

from django.conf import settings

from chat.db import reads, writes
from chat.runs import Run

from .backend import Limiter, MemoryLimiter, Slot
from .quota import Limits, Today, check_quota, count_output_tokens, today_for
from .slots import SlotKeeper

__all__ = ["Limits", "Slot", "Today", "admitted", "hold_until_end", "keeper", "today_for"]
logger = logging.getLogger(__name__)


@cache
def keeper() -> SlotKeeper:
    """This process's slots, from a limiter shared through Redis when REDIS_URL is set."""
    limiter: Limiter
    if settings.REDIS_URL:
        from .shared import RedisLimiter

        limiter = RedisLimiter(settings.REDIS_URL)
    else:
        limiter = MemoryLimiter()
    return SlotKeeper(limiter)


@contextlib.asynccontextmanager
async def admitted(user, today: Today | None = None) -> AsyncIterator[Slot]:
    """Check `user`'s limits and hold a slot for the reply the body starts.

    `today`: the user's `today_for`, where the caller read it along with other things.
    Raises LimitExceeded before anything is stored. If the body fails, the reply never
    started: the slot is given back, and the start does not count.
    """
    today = today or await reads(today_for)(user)
    check_quota(today)
    limits = today.limits
    slot = await keeper().acquire(user.pk, limits.max_concurrent_replies, limits.replies_per_minute)
    try:
        yield slot
    except BaseException:
        await keeper().release(slot, refund=True)
        raise


def hold_until_end(slot: Slot, run: Run) -> None:
    """Keep `slot` while `run` lives; when it ends, count its tokens and give the slot back."""
    keeper().hold_for(slot, run)

    async def finished(run: Run) -> None:
        try:
            await writes(count_output_tokens)(slot.user_id, run.generation.output_tokens)
        finally:
            await keeper().release(slot)

    run.on_finish = finished
