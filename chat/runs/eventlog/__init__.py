"""Reply event logs: `event_log()` is this process's, in memory or in Redis (REDIS_URL)."""

from functools import cache

from django.conf import settings

from .base import HEARTBEAT_SECONDS, EventLog, Pulse

__all__ = ["HEARTBEAT_SECONDS", "EventLog", "Pulse", "event_log"]


@cache
def event_log() -> EventLog:
    """This process's event log backend: Redis streams when REDIS_URL is set."""
    if settings.REDIS_URL:
        from .redis import RedisEventLog

        return RedisEventLog(settings.REDIS_URL)
    from .memory import MemoryEventLog

    return MemoryEventLog()
