"""The replies this process writes, and every reply's event log, whoever writes it."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import AsyncIterator

from chat import db
from chat.errors import Unavailable
from chat.events import Event

from .dispatch import dispatch, end_queued
from .eventlog import HEARTBEAT_SECONDS, EventLog
from .follow import follow
from .run import Run

logger = logging.getLogger(__name__)
REAP_EVERY_SECONDS = 60
TICK_SECONDS = 0.2  # how often a writer reads its stop flags: a stop lands within this


class RunRegistry:
    """Runs this process writes, keyed by message id, and the log that every reader follows."""

    def __init__(self, log: EventLog):
        self.log = log
        self._runs: dict[int, Run] = {}
        self._services: asyncio.Task | None = None
        self._next_beat = 0.0

    async def check(self) -> None:
        """Raise Unavailable if runs cannot be started right now."""
        await self.log.check()

    async def launch(self, run: Run, taken: bool = False) -> None:
        """Start `run`: hand it to a worker if its provider says so, else write it from here.

        `taken`: this (worker) process took the run from the queue, its `start` logged.
        """
        self.ensure_services()
        if run.provider.elsewhere:
            await dispatch(self.log, run)
            return
        mid = run.ids.message_id
        await self.log.pulse([mid])  # the lease first: nobody may take the reply for dead
        self._runs[mid] = run
        run.start(self.log, taken).add_done_callback(lambda _task: self._runs.pop(mid, None))
        # The start event is written before the response begins, so a reload that lands
        # on another process finds the reply at once. Once the run has started, a
        # failure only delays the log: the writer retries.
        with contextlib.suppress(Unavailable):
            await self.log.flush()

    async def is_running(self, message_id: int) -> bool:
        """Whether some process is still writing this reply."""
        return await self.log.writing(message_id)

    async def reap(self) -> int:
        """Mark streaming replies that no process is writing any more as failed; say how many."""
        candidates = await db.old_streaming_replies()
        dead = [mid for mid in candidates if not await self.is_running(mid)]
        return await db.fail_interrupted(dead) if dead else 0

    async def follow(self, message_id: int, after_seq: int) -> AsyncIterator[Event | None] | None:
        """The reply's events after `after_seq`, live; None if it has no log."""
        return await follow(self.log, message_id, after_seq, lambda: message_id in self._runs)

    async def stop(self, message_id: int) -> bool:
        """Ask the reply's writer to stop; False if nobody is writing it.

        A reply still waiting for a worker is ended here and then, never to be generated.
        """
        return await end_queued(self.log, message_id, None) or await self.log.stop(message_id)

    def ensure_services(self) -> None:
        """Start this process's background work (the reaper, the writers' tick) once."""
        if self._services is None or self._services.done():
            self._services = asyncio.create_task(self._serve(), context=contextvars.Context())

    async def _serve(self) -> None:
        await asyncio.gather(
            self._every(REAP_EVERY_SECONDS, self._reap), self._every(TICK_SECONDS, self._tend)
        )

    async def _reap(self) -> None:
        count = await self.reap()
        if count:
            logger.warning("marked %d interrupted replies as failed", count)

    async def _tend(self) -> None:
        """Renew the leases of the runs this process writes; obey stops; end abandoned runs."""
        live = [run for run in self._runs.values() if not run.finished]
        if not live:
            return
        now = time.monotonic()
        beat = now >= self._next_beat
        if beat:
            self._next_beat = now + HEARTBEAT_SECONDS
        pulses = await self.log.pulse([run.ids.message_id for run in live], beat)
        for run, pulse in zip(live, pulses, strict=True):
            # Listener counts may be a beat old: ask again before giving up on a run.
            if run.heard(pulse) and not await self.log.listeners(run.ids.message_id):
                run.stop("abandoned")

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
