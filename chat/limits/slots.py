"""The slots this process holds: kept alive while their replies run, given back as they end."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import TYPE_CHECKING

from .backend import Limiter, Slot

if TYPE_CHECKING:
    from chat.runs import Run

logger = logging.getLogger(__name__)


class SlotKeeper:
    """Takes slots from a limiter, refreshes them while held, and releases them."""

    def __init__(self, limiter: Limiter):
        self.limiter = limiter
        self._held: dict[str, tuple[Slot, Run | None]] = {}
        self._refresher: asyncio.Task | None = None

    async def acquire(self, user_id: int, max_concurrent: int, per_minute: int) -> Slot:
        """A slot for a reply about to start; LimitExceeded if the user is at a limit."""
        slot = await self.limiter.acquire(user_id, max_concurrent, per_minute)
        self._held[slot.id] = (slot, None)
        self._ensure_refresher()
        return slot

    def hold_for(self, slot: Slot, run: Run) -> None:
        """Keep `slot` while `run` lives."""
        self._held[slot.id] = (slot, run)

    async def release(self, slot: Slot, refund: bool = False) -> None:
        """Give the slot back (with `refund`, its start too); once only."""
        if self._held.pop(slot.id, None) is not None:
            await self.limiter.release(slot, refund)

    def _ensure_refresher(self) -> None:
        loop = asyncio.get_running_loop()
        task = self._refresher
        if task is None or task.done() or task.get_loop() is not loop:
            self._refresher = loop.create_task(
                self._refresh_forever(), context=contextvars.Context()
            )

    async def _refresh_forever(self) -> None:
        while self._held:
            await asyncio.sleep(self.limiter.slot_ttl / 3)
            try:
                await self._refresh()
            except Exception:
                # The slots will expire if this keeps failing: the limits err on the safe side.
                logger.warning("could not refresh %d reply slots", len(self._held), exc_info=True)

    async def _refresh(self) -> None:
        for slot, run in list(self._held.values()):
            if run is not None and run.task is not None and run.task.done():
                await self.release(slot)  # the run ended without its hook (it was cancelled)
        await self.limiter.refresh([slot for slot, _run in self._held.values()])
