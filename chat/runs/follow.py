"""Following a reply through its event log: the same way in every process."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

from django.conf import settings

from chat import db, events
from chat.db import INTERRUPTED, INTERRUPTED_CODE
from chat.errors import Unavailable
from chat.events import Event

from .eventlog import HEARTBEAT_SECONDS, EventLog

logger = logging.getLogger(__name__)


async def follow(log: EventLog, message_id: int, after_seq: int) -> AsyncIterator | None:
    """The reply's events after `after_seq`, live, None on idle; None if it has no log."""
    first = await log.read(message_id, after_seq, block=0)
    if first is None:
        return None
    return _follow(log, message_id, after_seq, first)


async def _follow(
    log: EventLog, message_id: int, seq: int, found: list[Event]
) -> AsyncIterator[Event | None]:
    listener = uuid.uuid4().hex
    reader = _Reader(log, message_id, seq)
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

    def __init__(self, log: EventLog, message_id: int, seq: int):
        self.log, self.message_id, self.seq = log, message_id, seq

    async def events(self, found: list[Event], listener: str) -> AsyncIterator[Event | None]:
        # Check on the writer once per heartbeat: a dead one is noticed within seconds.
        keepalive = settings.CHAT_KEEPALIVE_SECONDS
        idle, every = 0.0, min(HEARTBEAT_SECONDS, keepalive)
        while True:
            for event in found:
                self.seq = event.seq
                yield event
                if event.is_terminal:
                    return
            if found:
                idle = 0.0
            found = await self.log.read(self.message_id, self.seq, every) or []
            if found:
                continue
            if not await self.log.writing(self.message_id):
                # It ended just now, or its writer died: then this reader ends it.
                found = await self.log.read(self.message_id, self.seq, 0)
                if not found:
                    await self._end_orphan()
                    found = await self.log.read(self.message_id, self.seq, 0) or [self._lost()]
                continue
            await self.log.listen(self.message_id, listener)
            idle += every
            if idle >= keepalive:
                idle = 0.0
                yield None

    async def _end_orphan(self) -> None:
        """Nobody writes the reply any more: store it failed, with its last saved text."""
        await self.log.end(self._lost())
        await db.fail_interrupted([self.message_id])

    def _lost(self) -> Event:
        data = events.error_data(self.message_id, INTERRUPTED_CODE, INTERRUPTED)
        return Event(self.message_id, self.seq + 1, events.ERROR, data)
