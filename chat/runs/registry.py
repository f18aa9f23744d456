"""The in-process run registry: every reply this process is generating, and recent ones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from django.conf import settings

from chat.events import Event

from .run import Run


class LocalRunRegistry:
    """Runs keyed by message id; a finished run's log stays for replay until its TTL."""

    def __init__(self):
        self._runs: dict[int, Run] = {}

    def launch(self, run: Run) -> None:
        """Start `run` and keep it findable by its message id."""
        self._runs[run.ids.message_id] = run
        run.start().add_done_callback(lambda _task: self._expire_later(run))

    def _expire_later(self, run: Run) -> None:
        mid = run.ids.message_id
        ttl = settings.CHAT_EVENT_LOG_TTL_SECONDS
        asyncio.get_running_loop().call_later(ttl, lambda: self._runs.pop(mid, None))

    def get(self, message_id: int) -> Run | None:
        return self._runs.get(message_id)

    def is_running(self, message_id: int) -> bool:
        run = self._runs.get(message_id)
        return run is not None and not run.finished

    def follow(self, message_id: int, after_seq: int) -> AsyncIterator[Event | None] | None:
        """The run's events after `after_seq`, live; None if this process has no such run."""
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
        """Ask the run to stop; False if this process has no live run for it."""
        run = self._runs.get(message_id)
        return run is not None and run.stop("requested")

    async def wait(self, message_id: int) -> None:
        """Wait until the run has ended (tests and shutdown use this)."""
        run = self._runs.get(message_id)
        if run and run.task:
            await asyncio.shield(run.task)
