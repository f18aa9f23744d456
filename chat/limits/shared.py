"""The limits shared by every process through Redis, each decision one atomic Lua script.

Keys, for user U (the braces keep a user's keys on one Redis Cluster node):

- `chat:limits:{U}:slots`: a sorted set of slot ids, scored by when each expires (ms).
- `chat:limits:{U}:starts`: a sorted set of slot ids, scored by when each reply started.

Times are Redis's own clock (TIME), so the web processes' clocks never have to agree.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis.asyncio
from django.conf import settings

from chat.redis_pool import waiting_client
from chat.runs.eventlog.redis import redis_errors

from .backend import SLOT_TTL_SECONDS, WINDOW_SECONDS, Limiter, Slot, rate_limited, too_many_replies

# Each command is one short script: past these, one waits for a connection.
CONNECTIONS = 100

NOW_MS = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

# KEYS: slots, starts. ARGV: slot id, max concurrent, per window, window ms, slot ttl ms.
# Returns {0} when the slot is taken, {1} when too many run, {2, ms to wait} when too many started.
ACQUIRE = (
    NOW_MS
    + """
local window, ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return {1}
end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return {2, tonumber(oldest[2]) + window - now}
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], window)
return {0}
"""
)

# KEYS: slots. ARGV: slot id, slot ttl ms. An expired slot stays expired: another reply
# may have taken its place.
REFRESH = (
    NOW_MS
    + """
local expires = redis.call('ZSCORE', KEYS[1], ARGV[1])
if expires and tonumber(expires) > now then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return 0
"""
)


def key(user_id: int, part: str) -> str:
    return f"{settings.CHAT_REDIS_PREFIX}:limits:{{{user_id}}}:{part}"


class RedisLimiter(Limiter):
    """The limits of every process sharing the Redis at `url`."""

    def __init__(
        self, url: str, window: float = WINDOW_SECONDS, slot_ttl: float = SLOT_TTL_SECONDS
    ):
        super().__init__(window, slot_ttl)
        self.url = url
        self._redis: redis.asyncio.Redis | None = None

    @property
    def client(self) -> redis.asyncio.Redis:
        if self._redis is None:
            self._redis = waiting_client(self.url, CONNECTIONS, timeout=5)
            self._acquire = self._redis.register_script(ACQUIRE)
            self._refresh = self._redis.register_script(REFRESH)
        return self._redis

    async def acquire(self, user_id: int, max_concurrent: int, per_window: int) -> Slot:
        slot = Slot(user_id)
        client = self.client
        keys = [key(user_id, "slots"), key(user_id, "starts")]
        args = [slot.id, max_concurrent, per_window, _ms(self.window), _ms(self.slot_ttl)]
        with redis_errors():
            answer = await self._acquire(keys=keys, args=args, client=client)
        if answer[0] == 1:
            raise too_many_replies(max_concurrent)
        if answer[0] == 2:
            raise rate_limited(per_window, answer[1] / 1000)
        return slot

    async def release(self, slot: Slot, refund: bool = False) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.zrem(key(slot.user_id, "slots"), slot.id)
        if refund:
            pipe.zrem(key(slot.user_id, "starts"), slot.id)
        with redis_errors():
            await pipe.execute()

    async def refresh(self, slots: Iterable[Slot]) -> None:
        pipe = self.client.pipeline(transaction=False)
        ttl = _ms(self.slot_ttl)
        for slot in slots:
            await self._refresh(keys=[key(slot.user_id, "slots")], args=[slot.id, ttl], client=pipe)
        with redis_errors():
            await pipe.execute()


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
