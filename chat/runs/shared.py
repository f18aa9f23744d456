"""Runs shared through Redis, so any web process can follow or stop a reply another started.

The process that starts a reply owns its run. It keeps the event log in memory for
its own listeners and mirrors every event to a Redis stream, which listeners in
other processes read. Keys, for message id M:

- `chat:run:M:events`: the stream; entry id `0-(seq+1)`; kept for the log TTL after the end.
- `chat:run:M:owner`: the owner's channel-layer channel, refreshed while the run lives.
  Its absence means nobody is writing the reply (the owner died, or it ended).
- `chat:run:M:listeners`: a sorted set of listeners in other processes, scored by
  when their registration expires; the owner counts it to apply the grace period.

A stop or a listener change in another process reaches the owner as a channel-layer
message on its channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator

import redis
import redis.asyncio
from channels.layers import get_channel_layer
from django.conf import settings

from chat import db, events
from chat.db import INTERRUPTED, INTERRUPTED_CODE
from chat.errors import Unavailable
from chat.events import Event

from .registry import LocalRunRegistry
from .run import Run

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 2.0
OWNER_TTL_SECONDS = int(3 * HEARTBEAT_SECONDS)  # three missed heartbeats: the owner died
LISTENER_TTL_SECONDS = 30
RUNNING_LOG_TTL_SECONDS = 24 * 3600
REDIS_DOWN = "The message service (Redis) is unreachable; try again in a moment."


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


class RedisRunRegistry(LocalRunRegistry):
    """The local registry, plus a Redis mirror of every run for the other processes."""

    def __init__(self, url: str):
        super().__init__()
        self.url = url
        self.channel: str | None = None
        self._redis: redis.asyncio.Redis | None = None
        self._outbox: list[Event] = []
        self._outbox_ready = asyncio.Event()
        self._channel_lock = asyncio.Lock()

    @property
    def client(self) -> redis.asyncio.Redis:
        if self._redis is None:
            # Reads block for up to a keepalive interval (XREAD BLOCK); the socket must wait longer.
            self._redis = redis.asyncio.Redis.from_url(
                self.url,
                socket_connect_timeout=5,
                socket_timeout=settings.CHAT_KEEPALIVE_SECONDS + 10,
            )
        return self._redis

    async def check(self) -> None:
        with redis_errors():
            await self.client.ping()

    async def launch(self, run: Run) -> None:
        with redis_errors():
            await self._ensure_channel()
            mid = run.ids.message_id
            await self.client.set(key(mid, "owner"), self.channel, ex=OWNER_TTL_SECONDS)
        run.log.on_append = self._outbox_add
        await super().launch(run)
        # The start event is in Redis before the response begins, so a reload that lands
        # on another process finds the reply at once. Once the run has started, a
        # Redis failure only delays the mirror: the writer retries.
        with contextlib.suppress(redis.RedisError, OSError):
            await self._flush_outbox()

    async def is_running(self, message_id: int) -> bool:
        if await super().is_running(message_id):
            return True
        with redis_errors():
            return bool(await self.client.exists(key(message_id, "owner")))

    async def follow(self, message_id: int, after_seq: int) -> AsyncIterator[Event | None] | None:
        local = await super().follow(message_id, after_seq)
        if local is not None:
            return local
        with redis_errors():
            if not await self.client.exists(key(message_id, "events")):
                return None
        return self._follow_remote(message_id, after_seq)

    async def stop(self, message_id: int) -> bool:
        self.ensure_services()
        if message_id in self._runs:
            return await super().stop(message_id)
        with redis_errors():
            owner = await self.client.get(key(message_id, "owner"))
            if owner is None:
                return False
            await get_channel_layer().send(
                owner.decode(), {"type": "run.stop", "message_id": message_id}
            )
        return True

    async def _ensure_channel(self) -> None:
        """Name this process's channel once; stops and listener news arrive on it."""
        async with self._channel_lock:
            if self.channel is None:
                # The default prefix on purpose: channels-redis reads each prefix's queue under one
                # per-process lock, so channels with different prefixes would starve each other.
                self.channel = await get_channel_layer().new_channel()
        self.ensure_services()

    # Mirroring the log ---------------------------------------------------------------

    def _outbox_add(self, event: Event) -> None:
        self._outbox.append(event)
        self._outbox_ready.set()

    async def _flush_outbox(self) -> None:
        """Write pending events to their streams in one round trip."""
        batch, self._outbox = self._outbox, []
        self._outbox_ready.clear()
        if not batch:
            return
        pipe = self.client.pipeline(transaction=False)
        for event in batch:
            name = key(event.message_id, "events")
            fields = {"name": event.name, "data": json.dumps(event.data)}
            pipe.xadd(name, fields, id=f"0-{event.seq + 1}")
            ttl = settings.CHAT_EVENT_LOG_TTL_SECONDS if event.is_terminal else None
            # A TTL of 0 means the ended log goes at once (EXPIRE 0 deletes the key).
            pipe.expire(name, int(ttl if ttl is not None else RUNNING_LOG_TTL_SECONDS))
            if event.is_terminal:
                pipe.delete(key(event.message_id, "owner"))
        try:
            await pipe.execute()
        except (redis.RedisError, OSError):
            self._outbox[:0] = batch  # keep them for the next try, in order
            raise

    # Background upkeep ---------------------------------------------------------------

    async def _serve(self) -> None:
        await self._ensure_channel()
        await asyncio.gather(
            super()._serve(),
            self._every(0, self._write_outbox),
            self._every(HEARTBEAT_SECONDS, self._heartbeat),
            self._every(0, self._receive),
        )

    async def _write_outbox(self) -> None:
        await self._outbox_ready.wait()
        try:
            await self._flush_outbox()
        except (redis.RedisError, OSError):
            await asyncio.sleep(0.5)
            raise

    async def _heartbeat(self) -> None:
        """Tell the others this process still writes its runs; count their listeners."""
        live = [run for run in self._runs.values() if not run.finished]
        if not live:
            return
        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        for run in live:
            mid = run.ids.message_id
            pipe.set(key(mid, "owner"), self.channel, ex=OWNER_TTL_SECONDS)
            pipe.zremrangebyscore(key(mid, "listeners"), "-inf", now)
            pipe.zcard(key(mid, "listeners"))
        counts = (await pipe.execute())[2::3]
        for run, count in zip(live, counts, strict=True):
            run.set_remote_listeners(count)

    async def _receive(self) -> None:
        message = await get_channel_layer().receive(self.channel)
        run = self._runs.get(message.get("message_id"))
        if run is None:
            return
        if message["type"] == "run.stop":
            run.stop("requested")
        elif message["type"] == "run.listeners":
            await self._count_listeners(run)

    async def _count_listeners(self, run: Run) -> None:
        name = key(run.ids.message_id, "listeners")
        await self.client.zremrangebyscore(name, "-inf", time.time())
        run.set_remote_listeners(await self.client.zcard(name))

    # Following a run another process owns -----------------------------------------------

    async def _follow_remote(self, message_id: int, after_seq: int) -> AsyncIterator[Event | None]:
        listener = uuid.uuid4().hex
        await self._register_listener(message_id, listener)
        reader = _StreamReader(self, message_id, after_seq, listener)
        try:
            async for event in reader:
                yield event
        except (redis.RedisError, OSError):
            # Redis went away mid-reply: end this listener's stream rather than leave it hanging.
            logger.warning("lost Redis while following reply %s", message_id, exc_info=True)
            yield Event(message_id, reader.seq + 1, events.ERROR, _lost(message_id))
        finally:
            with contextlib.suppress(redis.RedisError, OSError):
                await self.client.zrem(key(message_id, "listeners"), listener)
                await self._notify_owner(message_id)

    async def _register_listener(self, message_id: int, listener: str) -> None:
        name = key(message_id, "listeners")
        expires = time.time() + max(LISTENER_TTL_SECONDS, settings.CHAT_KEEPALIVE_SECONDS * 2)
        added = await self.client.zadd(name, {listener: expires})
        await self.client.expire(name, RUNNING_LOG_TTL_SECONDS)
        if added:
            await self._notify_owner(message_id)

    async def _notify_owner(self, message_id: int) -> None:
        owner = await self.client.get(key(message_id, "owner"))
        if owner:
            await get_channel_layer().send(
                owner.decode(), {"type": "run.listeners", "message_id": message_id}
            )


class _StreamReader:
    """Reads a reply's stream another process writes; ends it if that process dies."""

    def __init__(self, registry: RedisRunRegistry, message_id: int, after_seq: int, listener):
        self.registry, self.client = registry, registry.client
        self.message_id, self.seq, self.listener = message_id, after_seq, listener
        self.stream = key(message_id, "events")

    async def _read(self, block_ms: int | None) -> list:
        found = await self.client.xread(
            {self.stream: f"0-{self.seq + 1}"}, block=block_ms, count=500
        )
        return found[0][1] if found else []

    async def __aiter__(self) -> AsyncIterator[Event | None]:
        # Check on the owner once per heartbeat: a dead one is noticed within seconds.
        idle, every = 0.0, min(HEARTBEAT_SECONDS, settings.CHAT_KEEPALIVE_SECONDS)
        while True:
            entries = await self._read(int(every * 1000))
            if not entries:
                if await self.client.exists(key(self.message_id, "owner")):
                    await self.registry._register_listener(self.message_id, self.listener)
                    idle += every
                    if idle >= settings.CHAT_KEEPALIVE_SECONDS:
                        idle = 0.0
                        yield None
                    continue
                # The owner is gone: it finished just now, or it died.
                entries = await self._read(None)
                if not entries:
                    yield await self._interrupted()
                    return
            idle = 0.0
            for entry_id, fields in entries:
                self.seq = int(entry_id.decode().split("-")[1]) - 1
                name, data = fields[b"name"].decode(), json.loads(fields[b"data"])
                yield Event(self.message_id, self.seq, name, data)
                if name in events.TERMINAL:
                    return

    async def _interrupted(self) -> Event:
        """Nobody writes the reply any more: store it as failed, with its last saved text."""
        await db.fail_interrupted([self.message_id])
        data = events.error_data(self.message_id, INTERRUPTED_CODE, INTERRUPTED)
        return Event(self.message_id, self.seq + 1, events.ERROR, data)


def _lost(message_id: int) -> dict:
    return events.error_data(message_id, "service_unavailable", REDIS_DOWN)
