"""Following a reply through its event log: the same way in every process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable

from django.conf import settings

from chat import db, events
from chat.db import INTERRUPTED, INTERRUPTED_CODE
from chat.errors import Unavailable
from chat.events import Event

from .eventlog import HEARTBEAT_SECONDS, EventLog
from .eventlog.base import LISTENER_SECONDS

logger = logging.getLogger(__name__)


async def follow(
    log: EventLog, message_id: int, after_seq: int, writing_here: Callable[[], bool]
) -> AsyncIterator | None:
    """The reply's events after `after_seq`, live, None on idle; None if it has no log.

    `writing_here()`: whether this process is writing the reply itself, and so alive.
    """
    first = await log.read(message_id, after_seq, block=0)
    if first is None:
        return None
    # A listener from now, not from its first read: a process whose loop has fallen far
    # behind (a burst of starts) may take longer than the grace period to begin sending
    # the response, and its writer must not take the reply for abandoned meanwhile. If the
    # response never begins, the listener expires (listener_seconds).
    listener = uuid.uuid4().hex
    await log.listen(message_id, listener)
    return _Reader(log, message_id, after_seq, writing_here, listener).events(first)


class _Reader:
    """Reads one reply's log; ends it, as interrupted, if its writer is gone."""

    def __init__(
        self, log: EventLog, message_id: int, seq: int, writing_here: Callable, listener: str
    ):
        self.log, self.message_id, self.seq = log, message_id, seq
        self.writing_here, self.listener = writing_here, listener
        self.renew_at = time.monotonic() + LISTENER_SECONDS / 3

    async def events(self, found: list[Event]) -> AsyncIterator[Event | None]:
        """The events from `found` on, None for each keepalive; the listener leaves after.

        One generator for all of it: each layer of them costs every delta of every stream.
        """
        try:
            while True:
                for event in found:
                    self.seq = event.seq
                    yield event
                    if event.is_terminal:
                        return
                found = await self._next()
                _raise_if_cancelling()
                if found is None:
                    found = []
                    yield None
        except Unavailable as error:
            # Redis went away mid-reply: end this listener's stream rather than leave it hanging.
            logger.warning("lost the event log while following reply %s", self.message_id)
            data = events.error_data(self.message_id, error.code, error.message)
            yield Event(self.message_id, self.seq + 1, events.ERROR, data)
        finally:
            with contextlib.suppress(Unavailable):
                await self.log.leave(self.message_id, self.listener)

    async def _next(self) -> list[Event] | None:
        """The next events, or None if a keepalive is due first."""
        # Check on the writer once per heartbeat: a dead one is noticed within seconds.
        keepalive = settings.CHAT_KEEPALIVE_SECONDS
        every = min(HEARTBEAT_SECONDS, keepalive)
        # By the clock, not by waits counted: a wait may end a little after its time.
        quiet_until = time.monotonic() + keepalive
        while True:
            if time.monotonic() >= self.renew_at:  # however busy the reply, this one listens
                await self.log.listen(self.message_id, self.listener)
                self.renew_at = time.monotonic() + LISTENER_SECONDS / 3
            found = await self.log.read(self.message_id, self.seq, every)
            if found:
                return found
            if not await self._writer_alive():
                return await self._ending()
            if time.monotonic() >= quiet_until:
                return None

    async def _ending(self) -> list[Event]:
        """The log's last events, its writer gone: it ended just now, or this reader ends it."""
        found = await self.log.read(self.message_id, self.seq, 0)
        if found:
            return found
        ending = await end_orphan(self.log, self.message_id, self.seq)
        if ending is not None:  # the log had ended already: say how, once more
            return [ending]
        return await self.log.read(self.message_id, self.seq, 0) or [self._lost()]

    async def _writer_alive(self) -> bool:
        # A writer in this process is alive whatever its lease says: a loop that fell
        # seconds behind (a burst of starts) lets its leases lapse, and its own readers
        # took its replies for orphans and ended them while it wrote on.
        return self.writing_here() or await self.log.writing(self.message_id)

    def _lost(self) -> Event:
        return _interrupted(self.message_id, self.seq + 1)


def _raise_if_cancelling() -> None:
    """Raise CancelledError if this reader's task is being cancelled (its client left).

    A cancellation can be lost below the reader: on Python 3.11, `asyncio.wait_for`
    returns its result instead of raising when the cancellation meets an inner task that
    has just finished, and redis-py sends each command through one (its socket time-out).
    CI saw it: a /v1 stream whose client hung up stayed 'cancelling' while its reader read
    on, so the listener never left and the abandoned reply was generated to its end.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _interrupted(message_id: int, seq: int) -> Event:
    data = events.error_data(message_id, INTERRUPTED_CODE, INTERRUPTED)
    return Event(message_id, seq, events.ERROR, data)


async def end_orphan(log: EventLog, message_id: int, seq: int) -> Event | None:
    """Nobody writes the reply any more: end its log, and store it failed with the text the
    log holds, which is what its followers were shown (or, if the log is not whole, the
    last saved text).

    A log that has already ended, at or before `seq` (a reattach with the id of its `done`),
    is left as it is: its end is returned.
    """
    logged = await _whole(log, message_id)
    if logged and logged[-1].is_terminal:
        return logged[-1]
    if not await log.end(_interrupted(message_id, seq + 1)):
        return  # another reader, or a late writer, ended it first
    if logged and logged[0].name == events.START:
        text = "".join(e.data["text"] for e in logged if e.name == events.DELTA)
        await db.fail_interrupted([message_id], content=text)
    else:
        await db.fail_interrupted([message_id])


async def _whole(log: EventLog, message_id: int) -> list[Event]:
    """Every event of the reply's log (a read returns a few hundred at most)."""
    logged: list[Event] = []
    while batch := await log.read(message_id, logged[-1].seq if logged else -1, 0):
        logged += batch
    return logged
