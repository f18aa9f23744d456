"""An append-only event log for one reply, which any number of listeners follow."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from chat.events import Event


class EventLog:
    """The events of one reply, numbered from 0, each appended once and kept in order."""

    def __init__(self, message_id: int):
        self.message_id = message_id
        self.events: list[Event] = []
        self._changed = asyncio.Event()
        # Called with each new event, e.g. to mirror the log to Redis for other processes.
        self.on_append: Callable[[Event], None] | None = None

    @property
    def finished(self) -> bool:
        return bool(self.events) and self.events[-1].is_terminal

    def append(self, name: str, data: dict) -> Event:
        """Add an event and wake every follower."""
        if self.finished:
            raise RuntimeError(f"reply {self.message_id} has already ended")
        event = Event(self.message_id, len(self.events), name, data)
        self.events.append(event)
        # Swap in a fresh Event so followers that wake later wait on the next append.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        if self.on_append:
            self.on_append(event)
        return event

    async def follow(self, after_seq: int, keepalive: float) -> AsyncIterator[Event | None]:
        """Yield the events after `after_seq`, then live ones until the last; None on idle."""
        next_seq = after_seq + 1
        while True:
            while next_seq < len(self.events):
                event = self.events[next_seq]
                next_seq += 1
                yield event
                if event.is_terminal:
                    return
            if self.finished:
                return  # the client has already seen the end
            changed = self._changed
            try:
                # asyncio.timeout, not wait_for: no extra task per wait, per listener.
                async with asyncio.timeout(keepalive):
                    await changed.wait()
            except TimeoutError:
                yield None
