"""The in-process run registry: every reply this process is generating, and recent ones."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator

from django.conf import settings

from chat import db
from chat.events import Event

from .run import Run

logger = logging.getLogger(__name__)
REAP_EVERY_SECONDS = 60


class LocalRunRegistry:
    """Runs keyed by message id; a finished run's log stays for replay until its TTL."""

    def __init__(self):
        self._runs: dict[int, Run] = {}
        self._services: asyncio.Task | None = None

    async def check(self) -> None:
        """Raise Unavailable if runs cannot be started right now."""

    async def launch(self, run: Run) -> None:
        """Start `run` and keep it findable by its message id."""
        self.ensure_services()
        self._runs[run.ids.message_id] = run
        run.start().add_done_callback(lambda _task: self._expire_later(run))

    def _expire_later(self, run: Run) -> None:
        mid = run.ids.message_id
        ttl = settings.CHAT_EVENT_LOG_TTL_SECONDS
        asyncio.get_running_loop().call_later(ttl, lambda: self._runs.pop(mid, None))

    def get(self, message_id: int) -> Run | None:
        return self._runs.get(message_id)

    async def is_running(self, message_id: int) -> bool:
        """Whether some process is still writing this reply."""
        run = self._runs.get(message_id)
        return run is not None and not run.finished

    async def reap(self) -> int:
        """Mark streaming replies that no process is writing any more as failed; say how many."""
        candidates = await db.old_streaming_replies()
        dead = [mid for mid in candidates if not await self.is_running(mid)]
        return await db.fail_interrupted(dead) if dead else 0

    async def follow(self, message_id: int, after_seq: int) -> AsyncIterator[Event | None] | None:
        """The run's events after `after_seq`, live; None if no process has such a run."""
        self.ensure_services()
        run = self._runs.get(message_id)
        if run is None:
            return None
        return self._follow(run, after_seq)

    async def _follow(self, run: Run, after_seq: int) -> AsyncIterator[Event | None]:
        run.attach()
        try:
            async for event in run.log.follow(after_seq, settings.CHAT_KEEPALIVE_SECONDS):
                yield event
        finally:
            run.detach()

    async def stop(self, message_id: int) -> bool:
        """Ask the run to stop; False if no process has a live run for it."""
        run = self._runs.get(message_id)
        return run is not None and run.stop("requested")

    def ensure_services(self) -> None:
        """Start this process's background work (the reaper, and Redis upkeep) once."""
        if self._services is None or self._services.done():
            self._services = asyncio.create_task(self._serve(), context=contextvars.Context())

    async def _serve(self) -> None:
        await self._every(REAP_EVERY_SECONDS, self._reap)

    async def _reap(self) -> None:
        count = await self.reap()
        if count:
            logger.warning("marked %d interrupted replies as failed", count)

    @staticmethod
    async def _every(seconds: float, step) -> None:
        """Run `step` now and then every `seconds`, surviving its failures."""
        while True:
            try:
                await step()
            except Exception:
                logger.exception("background step %s failed; retrying", step.__name__)
                await asyncio.sleep(max(seconds, 1))
                continue
            await asyncio.sleep(seconds)
