"""The event log of replies: one interface, whichever backend holds it.

A reply's log is written by whoever generates the reply, and read the same way by
every follower, in any process. The writer holds a lease on the log, renewed by its
heartbeat (`pulse`); a log whose lease lapsed before its end has lost its writer.
Followers register as listeners, so the writer can tell an abandoned reply, and a
stop reaches the writer as a flag it reads on each pulse.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass

from django.conf import settings

from chat.events import Event

HEARTBEAT_SECONDS = 2.0
LEASE_SECONDS = int(3 * HEARTBEAT_SECONDS)  # three missed heartbeats: the writer died
LISTENER_SECONDS = 30  # a listener that stops renewing for this long has gone
QUEUED = "queued"  # the lease's holder while a reply waits for a worker to take it


def listener_seconds() -> float:
    """How long a listener counts without renewing: longer than a keepalive comment's wait."""
    return max(LISTENER_SECONDS, settings.CHAT_KEEPALIVE_SECONDS * 2)


@dataclass(frozen=True, slots=True)
class Pulse:
    """What a writer learns about one of its logs on its heartbeat."""

    stop: bool
    listeners: int  # following the log now
    listened: bool = False  # somebody followed it since the last beat, if only briefly


class EventLog(ABC):
    """Reply event logs by message id: events numbered from 0, each appended once, in order.

    `holder` names this process as a writer: its pulses hold leases in that name.
    """

    def __init__(self):
        self.holder = uuid.uuid4().hex

    @abstractmethod
    async def check(self) -> None:
        """Raise Unavailable if logs cannot be written right now."""

    # The writer's side ------------------------------------------------------------------

    @abstractmethod
    def append(self, event: Event) -> None:
        """Queue `event`, the log's next; queued events are written soon, in order."""

    @abstractmethod
    async def flush(self) -> None:
        """Wait until every queued event is written."""

    @abstractmethod
    async def lease(
        self, message_id: int, seconds: float, holder: str = "", replacing: str = ""
    ) -> bool:
        """Take the log's lease for `holder` (this process by default) if it is free; with
        `replacing`, only from that holder (a reply waiting for a worker is taken so)."""

    @abstractmethod
    async def pulse(self, message_ids: list[int], beat: bool = True) -> list[Pulse]:
        """The writer's tick: renew its leases if `beat`; each log's stop flag and listeners.

        Between beats, a backend may answer with the listener counts of the last beat.
        """

    # Anyone's side --------------------------------------------------------------------

    @abstractmethod
    async def read(self, message_id: int, after_seq: int, block: float) -> list[Event] | None:
        """The events after `after_seq`, waiting up to `block` seconds for one; None: no log."""

    @abstractmethod
    async def end(self, event: Event) -> bool:
        """Append the terminal `event` now unless its number is taken: ends a writerless log."""

    @abstractmethod
    async def writing(self, message_id: int) -> bool:
        """Whether a writer holds the log's lease."""

    @abstractmethod
    async def stop(self, message_id: int) -> bool:
        """Raise the log's stop flag for its writer; False if no writer holds it."""

    @abstractmethod
    async def listen(self, message_id: int, listener: str) -> None:
        """Count `listener` as following the log (again: each call renews it)."""

    @abstractmethod
    async def leave(self, message_id: int, listener: str) -> None:
        """`listener` stopped following the log."""

    @abstractmethod
    async def listeners(self, message_id: int) -> int:
        """How many listeners follow the log now, in every process."""
