"""The event log in this process's memory: the embedded default, with no Redis."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from django.conf import settings

from chat.events import Event

from .base import LEASE_SECONDS, EventLog, Pulse, listener_seconds

logger = logging.getLogger(__name__)


@dataclass
class _Log:
    events: list[Event] = field(default_factory=list)
    waiters: list[asyncio.Future] = field(default_factory=list)  # woken by the next append
    leased_until: float = 0.0
    holder: str = ""
    stop: bool = False
    # Each listener until when it listens (monotonic): gone, or not renewed, it expires,
    # and is counted once more, as having listened, at the writer's next beat.
    listeners: dict[str, float] = field(default_factory=dict)

    def live(self, now: float) -> int:
        return sum(1 for until in self.listeners.values() if until > now)

    async def next_append(self, timeout: float) -> None:
        """Wait for the next append, for `timeout` seconds at most.

        A future and a timer: an asyncio.Event and asyncio.timeout did the same with several
        times the work, and readers wait once for each delta of every stream.
        """
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self.waiters.append(waiter)
        timer = loop.call_later(timeout, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            if waiter in self.waiters:  # it timed out, or its reader was cancelled
                self.waiters.remove(waiter)

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
        if self.waiters:
            waiters, self.waiters = self.waiters, []
            for waiter in waiters:
                _wake(waiter)
        if event.is_terminal:
            self.leased_until = 0.0
        return True


def _wake(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(None)


class MemoryEventLog(EventLog):
    """Logs in a dict; an ended log stays for CHAT_EVENT_LOG_TTL_SECONDS, for reattaching."""

    def __init__(self):
        super().__init__()
        self._logs: dict[int, _Log] = {}

    async def check(self) -> None:
        """Memory is always there."""

    def __contains__(self, message_id: int) -> bool:
        return message_id in self._logs

    def _log(self, message_id: int) -> _Log:
        """The reply's log, made if it has none. Not setdefault(id, _Log()): that would make
        a _Log, its list and dicts for each event appended and each run at each tick."""
        log = self._logs.get(message_id)
        if log is None:
            log = self._logs[message_id] = _Log()
        return log

    def append(self, event: Event) -> None:
        log = self._log(event.message_id)
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
            log = self._log(mid)
            listened, now = bool(log.listeners), time.monotonic()
            if beat and not log.ended:
                log.leased_until, log.holder = until, self.holder
                log.listeners = {name: t for name, t in log.listeners.items() if t > now}
            pulses.append(Pulse(log.stop, log.live(now), listened))
        return pulses

    async def lease(
        self, message_id: int, seconds: float, holder: str = "", replacing: str = ""
    ) -> bool:
        log = self._logs.get(message_id) or (None if replacing else self._log(message_id))
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
            await log.next_append(block)
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
            log.listeners[listener] = time.monotonic() + listener_seconds()

    async def leave(self, message_id: int, listener: str) -> None:
        if (log := self._logs.get(message_id)) and listener in log.listeners:
            log.listeners[listener] = time.monotonic()  # expired: the next beat counts it

    async def listeners(self, message_id: int) -> int:
        log = self._logs.get(message_id)
        return log.live(time.monotonic()) if log else 0
