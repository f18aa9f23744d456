"""The event log in this process's memory: the embedded default, with no Redis."""

from __future__ import annotations

import asyncio
import logging
import math
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
    counted: int = 0  # live listeners at the writer's last beat

    def live(self, now: float) -> int:
        return sum(1 for until in self.listeners.values() if until > now)

    async def next_append(self, timeout: float, deadlines: _Deadlines) -> None:
        """Wait for the next append, for about `timeout` seconds at most (see _Deadlines)."""
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        slot = deadlines.add(waiter, timeout)
        try:
            await waiter
        finally:
            deadlines.discard(slot, waiter)
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


class _Deadlines:
    """Ends waits that are up, a slice of SLICE seconds of them with one timer.

    Readers wait once for each delta of every stream, and an append ends nearly every wait:
    a timer of its own for each (made, put in the loop's heap, then cancelled) cost more
    than the rest of the wait. A wait ends at the end of the slice its time falls in, up
    to SLICE late, which the heartbeat checks and keepalives it paces can afford.
    """

    SLICE = 0.25

    def __init__(self):
        # By loop and slot: each loop's waiters are ended by a timer on that loop.
        self.slices: dict[tuple[asyncio.AbstractEventLoop, int], set[asyncio.Future]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None  # the last loop a wait came from

    def add(self, waiter: asyncio.Future, timeout: float) -> tuple:
        loop = waiter.get_loop()
        if loop is not self.loop:  # a loop closed with its timers pending would stay here
            self.loop = loop
            self.slices = {slot: ws for slot, ws in self.slices.items() if not slot[0].is_closed()}
        slot = (loop, math.ceil((loop.time() + timeout) / self.SLICE))
        waiters = self.slices.get(slot)
        if waiters is None:
            waiters = self.slices[slot] = set()
            loop.call_at(slot[1] * self.SLICE, self._end, slot)
        waiters.add(waiter)
        return slot

    def discard(self, slot: tuple, waiter: asyncio.Future) -> None:
        if waiters := self.slices.get(slot):
            waiters.discard(waiter)

    def _end(self, slot: tuple) -> None:
        for waiter in self.slices.pop(slot, ()):
            _wake(waiter)


class MemoryEventLog(EventLog):
    """Logs in a dict; an ended log stays for CHAT_EVENT_LOG_TTL_SECONDS, for reattaching."""

    def __init__(self):
        super().__init__()
        self._logs: dict[int, _Log] = {}
        self._deadlines = _Deadlines()

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
        if not beat:  # between beats, as in Redis: the stops, and the last beat's counts
            return [Pulse((log := self._log(mid)).stop, log.counted) for mid in message_ids]
        now = time.monotonic()
        until, pulses = now + LEASE_SECONDS, []
        for mid in message_ids:
            log = self._log(mid)
            listened = bool(log.listeners)
            if not log.ended:
                log.leased_until, log.holder = until, self.holder
                log.listeners = {name: t for name, t in log.listeners.items() if t > now}
            log.counted = log.live(now)
            pulses.append(Pulse(log.stop, log.counted, listened))
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
            await log.next_append(block, self._deadlines)
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
