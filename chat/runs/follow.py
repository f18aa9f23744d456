"""Following a reply through its event log: the same way in every process."""

from __future__ import annotations

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
    return _follow(_Reader(log, message_id, after_seq, writing_here), first)


async def _follow(reader: _Reader, found: list[Event]) -> AsyncIterator[Event | None]:
    log, message_id = reader.log, reader.message_id
    listener = uuid.uuid4().hex
    try:
        await log.listen(message_id, listener)
        async for event in reader.events(found, listener):
            yield event
    except Unavailable as error:
        # Redis went away mid-reply: end this listener's stream rather than leave it hanging.
        logger.warning("lost the event log while following reply %s", message_id)
        data = events.error_data(message_id, error.code, error.message)
        yield Event(message_id, reader.seq + 1, events.ERROR, data)
    finally:
        with contextlib.suppress(Unavailable):
            await log.leave(message_id, listener)


class _Reader:
    """Reads one reply's log; ends it, as interrupted, if its writer is gone."""

    def __init__(self, log: EventLog, message_id: int, seq: int, writing_here: Callable):
        self.log, self.message_id, self.seq = log, message_id, seq
        self.writing_here = writing_here

    async def events(self, found: list[Event], listener: str) -> AsyncIterator[Event | None]:
        # Check on the writer once per heartbeat: a dead one is noticed within seconds.
        keepalive = settings.CHAT_KEEPALIVE_SECONDS
        idle, every = 0.0, min(HEARTBEAT_SECONDS, keepalive)
        renew_at = time.monotonic() + LISTENER_SECONDS / 3
        while True:
            for event in found:
                self.seq = event.seq
                yield event
                if event.is_terminal:
                    return
            if found:
                idle = 0.0
            if time.monotonic() >= renew_at:  # however busy the reply, this one still listens
                await self.log.listen(self.message_id, listener)
                renew_at = time.monotonic() + LISTENER_SECONDS / 3
            found = await self.log.read(self.message_id, self.seq, every) or []
            if found:
                continue
            if not await self._writer_alive():
                # It ended just now, or its writer died: then this reader ends it.
                found = await self.log.read(self.message_id, self.seq, 0)
                if not found:
                    ending = await end_orphan(self.log, self.message_id, self.seq)
                    if ending is not None:  # the log had ended already: say how, once more
                        yield ending
                        return
                    found = await self.log.read(self.message_id, self.seq, 0) or [self._lost()]
                continue
            idle += every
            if idle >= keepalive:
                idle = 0.0
                yield None

    async def _writer_alive(self) -> bool:
        # A writer in this process is alive whatever its lease says: a loop that fell
        # seconds behind (a burst of starts) lets its leases lapse, and its own readers
        # took its replies for orphans and ended them while it wrote on.
        return self.writing_here() or await self.log.writing(self.message_id)

    def _lost(self) -> Event:
        return _interrupted(self.message_id, self.seq + 1)


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
