"""The event log in this process's memory: the embedded default, with no Redis."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from django.conf import settings

from chat.events import Event

from .base import LEASE_SECONDS, EventLog, Pulse

logger = logging.getLogger(__name__)


@dataclass
class _Log:
    events: list[Event] = field(default_factory=list)
    changed: asyncio.Event | None = None  # made when a reader waits, set by the next append
    leased_until: float = 0.0
    holder: str = ""
    stop: bool = False
    listeners: set[str] = field(default_factory=set)
    left: int = 0  # listeners gone since the last beat

    def next_append(self) -> asyncio.Event:
        """An Event the next append sets."""
        if self.changed is None:
            self.changed = asyncio.Event()
        return self.changed

    @property
    def ended(self) -> bool:
        return bool(self.events) and self.events[-1].is_terminal

    def add(self, event: Event) -> bool:
        if self.ended or event.seq != len(self.events):
            # The log was ended by a reader that found no writer; a late writer's events
            # are refused, as Redis refuses them.
            logger.warning("event %s was refused by its log", event.id)
            return False
        self.events.append(event)
        # Readers that wake later wait on a fresh Event, for the next append.
        if self.changed is not None:
            self.changed.set()
            self.changed = None
        if event.is_terminal:
            self.leased_until = 0.0
        return True


class MemoryEventLog(EventLog):
    """Logs in a dict; an ended log stays for CHAT_EVENT_LOG_TTL_SECONDS, for reattaching."""

    def __init__(self):
        super().__init__()
        self._logs: dict[int, _Log] = {}

    async def check(self) -> None:
        """Memory is always there."""

    def __contains__(self, message_id: int) -> bool:
        return message_id in self._logs

    def append(self, event: Event) -> None:
        log = self._logs.setdefault(event.message_id, _Log())
        if log.add(event) and event.is_terminal:
            self._expire_later(event.message_id)

    def _expire_later(self, message_id: int) -> None:
        ttl = settings.CHAT_EVENT_LOG_TTL_SECONDS
        asyncio.get_running_loop().call_later(ttl, self._logs.pop, message_id, None)

    async def flush(self) -> None:
        """Nothing waits: appends are written at once."""

    async def pulse(self, message_ids: list[int], beat: bool = True) -> list[Pulse]:
        until = time.monotonic() + LEASE_SECONDS
        pulses = []
        for mid in message_ids:
            log = self._logs.setdefault(mid, _Log())
            listened = bool(log.listeners) or log.left > 0
            if beat and not log.ended:
                log.leased_until, log.holder, log.left = until, self.holder, 0
            pulses.append(Pulse(log.stop, len(log.listeners), listened))
        return pulses

    async def lease(
        self, message_id: int, seconds: float, holder: str = "", replacing: str = ""
    ) -> bool:
        log = self._logs.get(message_id) or (
            None if replacing else self._logs.setdefault(message_id, _Log())
        )
        if log is None or log.ended:
            return False
        held = log.holder if log.leased_until > time.monotonic() else ""
        if held != replacing:
            return False
        log.leased_until, log.holder = time.monotonic() + seconds, holder or self.holder
        return True

    async def read(self, message_id: int, after_seq: int, block: float) -> list[Event] | None:
        log = self._logs.get(message_id)
        if log is None or not log.events:
            return None
        if len(log.events) <= after_seq + 1 and block > 0 and not log.ended:
            changed = log.next_append()
            # asyncio.timeout, not wait_for: no extra task per wait, per reader.
            try:
                async with asyncio.timeout(block):
                    await changed.wait()
            except TimeoutError:
                return []
        return log.events[after_seq + 1 :]

    async def end(self, event: Event) -> bool:
        log = self._logs.get(event.message_id)
        if log is None or log.ended or event.seq != len(log.events):
            return False
        self.append(event)
        return True

    async def writing(self, message_id: int) -> bool:
        log = self._logs.get(message_id)
        return log is not None and log.leased_until > time.monotonic()

    async def stop(self, message_id: int) -> bool:
        if not await self.writing(message_id):
            return False
        self._logs[message_id].stop = True
        return True

    async def listen(self, message_id: int, listener: str) -> None:
        if log := self._logs.get(message_id):
            log.listeners.add(listener)

    async def leave(self, message_id: int, listener: str) -> None:
        if (log := self._logs.get(message_id)) and listener in log.listeners:
            log.listeners.discard(listener)
            log.left += 1

    async def listeners(self, message_id: int) -> int:
        log = self._logs.get(message_id)
        return len(log.listeners) if log else 0
