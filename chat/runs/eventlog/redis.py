"""The event log in Redis streams, shared by every web process and worker.

Keys, for message id M:

- `chat:run:M:events`: the stream; entry id `0-(seq+1)`, so an event can be appended
  only once and only in order; kept for CHAT_EVENT_LOG_TTL_SECONDS after the end.
- `chat:run:M:owner`: the writer's lease, renewed by its heartbeat.
- `chat:run:M:stop`: the stop flag the writer reads on each pulse.
- `chat:run:M:listeners`: a sorted set of listeners, scored by when each expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

import redis
import redis.asyncio
from django.conf import settings

from chat.errors import Unavailable
from chat.events import Event
from chat.redis_pool import waiting_client

from .base import HEARTBEAT_SECONDS, LEASE_SECONDS, EventLog, Pulse, listener_seconds

logger = logging.getLogger(__name__)
RUNNING_LOG_TTL_SECONDS = 24 * 3600
# Each follower holds a connection in a blocking read; more wait for one to come free.
READ_CONNECTIONS = 2000
# Writes, beats, leases and stops are short: past these, one waits for a connection.
WRITE_CONNECTIONS = 100
REDIS_DOWN = "The message service (Redis) is unreachable; try again in a moment."


# KEYS: the lease, the events. ARGV: holder, seconds, the holder it may replace ("": none).
# An ended log's lease is gone for good.
LEASE = """
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
if last and (last[2][2] == 'done' or last[2][2] == 'error') then return 0 end
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""


# KEYS: the events. ARGV: the entry id, the event's name, its data. An ended log takes no
# more: a writer that stalled past its lease, and was taken for dead, cannot add to it.
# (The TTL is set by a command of its own after this: readers blocked on the stream are
# served when the script ends, and an EXPIRE 0 in it would delete the event first.)
APPEND = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
if last and (last[2][2] == 'done' or last[2][2] == 'error') then
  return redis.error_reply('ENDED the log has ended')
end
return redis.call('XADD', KEYS[1], ARGV[1], 'name', ARGV[2], 'data', ARGV[3])
"""


def key(message_id: int, part: str) -> str:
    return f"{settings.CHAT_REDIS_PREFIX}:run:{message_id}:{part}"


@contextlib.contextmanager
def redis_errors():
    """Redis being down is a 503 for the client, not a crash."""
    try:
        yield
    except (redis.RedisError, OSError) as exc:
        logger.warning("Redis unavailable: %r", exc)
        raise Unavailable(REDIS_DOWN) from None


class RedisEventLog(EventLog):
    """Logs as Redis streams; appends go out in pipelined batches, in order."""

    def __init__(self, url: str):
        super().__init__()
        self.url = url
        self._redis: redis.asyncio.Redis | None = None
        self._reading: redis.asyncio.Redis | None = None
        self._outbox: list[Event] = []
        self._outbox_ready = asyncio.Event()
        self._writer: asyncio.Task | None = None
        # One batch at a time: a flush waits for the batch in flight, so events stay in order
        # and "flushed" means written.
        self._writing = asyncio.Lock()
        # Listeners at each reply's last beat, and when (time.time()).
        self._counts: dict[int, tuple[int, float]] = {}

    @property
    def client(self) -> redis.asyncio.Redis:
        """For writes, beats, leases and stops: short commands, never behind the readers."""
        if self._redis is None:
            self._redis = waiting_client(self.url, WRITE_CONNECTIONS, timeout=10)
        return self._redis

    @property
    def reader(self) -> redis.asyncio.Redis:
        """For reads: a follower holds a connection while its read blocks (XREAD BLOCK), so
        the readers have a pool of their own, large, where a reader past it waits its turn;
        the writers' commands never wait behind them."""
        if self._reading is None:
            wait = settings.CHAT_KEEPALIVE_SECONDS + 10  # longer than a read blocks
            self._reading = waiting_client(self.url, READ_CONNECTIONS, timeout=wait)
        return self._reading

    async def check(self) -> None:
        with redis_errors():
            await self.client.ping()

    # Writing ----------------------------------------------------------------------------

    def append(self, event: Event) -> None:
        self._outbox.append(event)
        self._outbox_ready.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_forever())

    async def flush(self) -> None:
        with redis_errors():
            await self._write_outbox()

    async def _write_forever(self) -> None:
        while True:
            await self._outbox_ready.wait()
            try:
                await self._write_outbox()
            except (redis.RedisError, OSError):
                logger.warning("could not write %d events; retrying", len(self._outbox))
                await asyncio.sleep(0.5)

    async def _write_outbox(self) -> None:
        """Write the queued events in one round trip; on failure keep them, in order."""
        async with self._writing:
            await self._write_batch()

    async def _write_batch(self) -> None:
        batch, self._outbox = self._outbox, []
        self._outbox_ready.clear()
        if not batch:
            return
        pipe = self.client.pipeline(transaction=False)
        for event in batch:
            self._add(pipe, event)
        try:
            results = await pipe.execute(raise_on_error=False)
        except BaseException:
            # Redis failed, or the request that flushed was cancelled: keep the events for
            # the next write. Any already written are refused then (each id once), not doubled.
            self._outbox[:0] = batch
            self._outbox_ready.set()
            raise
        for error in (r for r in results if isinstance(r, redis.ResponseError)):
            # Its number was taken: the log was ended by a reader that found no writer.
            logger.warning("an event was refused by its log: %s", error)

    @staticmethod
    def _add(pipe, event: Event) -> None:
        name = key(event.message_id, "events")
        pipe.eval(APPEND, 1, name, f"0-{event.seq + 1}", event.name, json.dumps(event.data))
        ttl = settings.CHAT_EVENT_LOG_TTL_SECONDS if event.is_terminal else RUNNING_LOG_TTL_SECONDS
        # A TTL of 0 means the ended log goes at once (EXPIRE 0 deletes the key).
        pipe.expire(name, int(ttl))
        if event.is_terminal:
            parts = ("owner", "stop", "listeners")
            pipe.delete(*(key(event.message_id, part) for part in parts))

    async def pulse(self, message_ids: list[int], beat: bool = True) -> list[Pulse]:
        if not message_ids:
            return []
        with redis_errors():
            pipe = self.client.pipeline(transaction=False)
            pipe.mget([key(mid, "stop") for mid in message_ids])
            if beat:
                now = time.time()
                for mid in message_ids:
                    pipe.set(key(mid, "owner"), self.holder, ex=LEASE_SECONDS)
                    pipe.zcard(key(mid, "listeners"))  # with those that left since the last beat
                    pipe.zremrangebyscore(key(mid, "listeners"), "-inf", now)
                    pipe.zcard(key(mid, "listeners"))
            stops, *beats = await pipe.execute()
        if not beat:
            counts = self._counts
            return [
                Pulse(bool(s), counts.get(m, (0,))[0])
                for m, s in zip(message_ids, stops, strict=True)
            ]
        # Not replaced by this call's: a new reply's own first beat keeps the others' counts.
        # A reply that no beat has named for two beats has ended: its count goes.
        fresh = now - 2 * HEARTBEAT_SECONDS
        counts = {m: seen for m, seen in self._counts.items() if seen[1] > fresh}
        counts.update((m, (live, now)) for m, live in zip(message_ids, beats[3::4], strict=True))
        self._counts = counts
        return [
            Pulse(bool(stop), live, listened > 0)
            for stop, listened, live in zip(stops, beats[1::4], beats[3::4], strict=True)
        ]

    async def lease(
        self, message_id: int, seconds: float, holder: str = "", replacing: str = ""
    ) -> bool:
        keys = [key(message_id, "owner"), key(message_id, "events")]
        args = [holder or self.holder, max(int(seconds), 1), replacing]
        with redis_errors():
            return bool(await self.client.eval(LEASE, 2, *keys, *args))

    # Reading ----------------------------------------------------------------------------

    async def read(self, message_id: int, after_seq: int, block: float) -> list[Event] | None:
        stream = key(message_id, "events")
        with redis_errors():
            found = await self.reader.xread(
                {stream: f"0-{after_seq + 1}"}, count=500, block=int(block * 1000) or None
            )
            if not found and not await self.reader.exists(stream):
                return None
        entries = found[0][1] if found else []
        return [_event(message_id, entry_id, fields) for entry_id, fields in entries]

    async def end(self, event: Event) -> bool:
        pipe = self.client.pipeline(transaction=False)
        self._add(pipe, event)
        with redis_errors():
            added, *_rest = await pipe.execute(raise_on_error=False)
        return not isinstance(added, redis.ResponseError)

    async def writing(self, message_id: int) -> bool:
        with redis_errors():
            return bool(await self.client.exists(key(message_id, "owner")))

    async def stop(self, message_id: int) -> bool:
        with redis_errors():
            if not await self.client.exists(key(message_id, "owner")):
                return False
            await self.client.set(key(message_id, "stop"), 1, ex=RUNNING_LOG_TTL_SECONDS)
        return True

    async def listen(self, message_id: int, listener: str) -> None:
        name = key(message_id, "listeners")
        expires = time.time() + listener_seconds()
        with redis_errors():
            pipe = self.client.pipeline(transaction=False)
            pipe.zadd(name, {listener: expires})
            pipe.expire(name, RUNNING_LOG_TTL_SECONDS)
            await pipe.execute()

    async def leave(self, message_id: int, listener: str) -> None:
        # Expired rather than removed: the writer's next beat still sees that it listened.
        with redis_errors():
            await self.client.zadd(key(message_id, "listeners"), {listener: time.time()}, xx=True)

    async def listeners(self, message_id: int) -> int:
        name = key(message_id, "listeners")
        with redis_errors():
            pipe = self.client.pipeline(transaction=False)
            pipe.zremrangebyscore(name, "-inf", time.time())
            pipe.zcard(name)
            return (await pipe.execute())[1]


def _event(message_id: int, entry_id: bytes, fields: dict) -> Event:
    seq = int(entry_id.decode().split("-")[1]) - 1
    return Event(message_id, seq, fields[b"name"].decode(), json.loads(fields[b"data"]))
