"""Concurrency slots and starts per minute, per user: the interface and its in-process backend.

A reply needs a *slot* to start. Taking one checks both limits and records both at once,
atomically, so simultaneous sends can never start more than the limits allow:

- a slot counts against the concurrent replies until it is released, or until it
  expires, `slot_ttl` seconds after it was taken or last refreshed (a process that
  dies stops refreshing, so its slots come back on their own);
- a start counts against the replies per minute for `window` seconds; a start that
  never became a reply (the message was refused after all) is refunded.

`MemoryLimiter` serves one process (the embedded default); `RedisLimiter`
(`chat/limits/shared.py`) serves any number sharing a Redis. Both pass the one
contract suite in tests/test_limit_backends.py.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field

from chat.errors import LimitExceeded

WINDOW_SECONDS = 60.0
SLOT_TTL_SECONDS = 15.0
# When one of the replies will end is unknown; this is how soon it is worth asking again.
BUSY_RETRY_SECONDS = 5


@dataclass(frozen=True)
class Slot:
    """The right to run one reply, held by the process that took it."""

    user_id: int
    id: str = field(default_factory=lambda: uuid.uuid4().hex)


def too_many_replies(limit: int) -> LimitExceeded:
    return LimitExceeded(
        f"You already have {limit} {_replies(limit)} being written, the most allowed at "
        "once; try again when one has finished.",
        "too_many_replies",
        BUSY_RETRY_SECONDS,
    )


def rate_limited(limit: int, retry_after: float) -> LimitExceeded:
    seconds = max(1, math.ceil(retry_after))
    return LimitExceeded(
        f"You have started {limit} {_replies(limit)} in the last minute, the most allowed; "
        f"try again in {seconds} {'second' if seconds == 1 else 'seconds'}.",
        "rate_limited",
        seconds,
    )


def _replies(count: int) -> str:
    return "reply" if count == 1 else "replies"


class Limiter(ABC):
    """Slots for replies, per user; every method is safe to call from many tasks at once."""

    def __init__(self, window: float = WINDOW_SECONDS, slot_ttl: float = SLOT_TTL_SECONDS):
        self.window = window
        self.slot_ttl = slot_ttl

    @abstractmethod
    async def acquire(self, user_id: int, max_concurrent: int, per_window: int) -> Slot:
        """Take a slot, or raise LimitExceeded (`too_many_replies` or `rate_limited`)."""

    @abstractmethod
    async def release(self, slot: Slot, refund: bool = False) -> None:
        """Give the slot back; with `refund`, its start no longer counts either."""

    @abstractmethod
    async def refresh(self, slots: Iterable[Slot]) -> None:
        """Keep these slots (of live replies) from expiring for another `slot_ttl`."""


class MemoryLimiter(Limiter):
    """The limits of one process, in its memory."""

    def __init__(self, window: float = WINDOW_SECONDS, slot_ttl: float = SLOT_TTL_SECONDS):
        super().__init__(window, slot_ttl)
        # Requests may come from more than one thread (and event loop): one lock for all.
        self._lock = threading.Lock()
        self._slots: dict[int, dict[str, float]] = {}  # user -> slot id -> expiry
        self._starts: dict[int, dict[str, float]] = {}  # user -> slot id -> start, in order

    async def acquire(self, user_id: int, max_concurrent: int, per_window: int) -> Slot:
        with self._lock:
            now = time.monotonic()
            slots = {k: v for k, v in self._slots.get(user_id, {}).items() if v > now}
            starts = {
                k: v for k, v in self._starts.get(user_id, {}).items() if v > now - self.window
            }
            self._slots[user_id], self._starts[user_id] = slots, starts
            if len(slots) >= max_concurrent:
                raise too_many_replies(max_concurrent)
            if len(starts) >= per_window:
                raise rate_limited(per_window, min(starts.values()) + self.window - now)
            slot = Slot(user_id)
            slots[slot.id] = now + self.slot_ttl
            starts[slot.id] = now
            return slot

    async def release(self, slot: Slot, refund: bool = False) -> None:
        with self._lock:
            self._slots.get(slot.user_id, {}).pop(slot.id, None)
            if refund:
                self._starts.get(slot.user_id, {}).pop(slot.id, None)
            self._forget_idle(slot.user_id)

    async def refresh(self, slots: Iterable[Slot]) -> None:
        with self._lock:
            now = time.monotonic()
            for slot in slots:
                held = self._slots.get(slot.user_id, {})
                # An expired slot stays expired: another reply may have taken its place.
                if held.get(slot.id, now) > now:
                    held[slot.id] = now + self.slot_ttl

    def _forget_idle(self, user_id: int) -> None:
        if not self._slots.get(user_id) and not self._starts.get(user_id):
            self._slots.pop(user_id, None)
            self._starts.pop(user_id, None)
