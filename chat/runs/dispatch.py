"""Replies and texts a generation worker writes: the web process's side of the handover.

The web process logs the reply's `start`, holds its log's lease as `queued` and puts a
job on CHAT_WORKER_CHANNEL. A worker takes the job by taking the lease from `queued`,
then writes the log as any writer does. A stop, or the queue time-out, that takes the
lease from `queued` first ends the reply instead, so no worker generates it later.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
import uuid
from collections.abc import AsyncIterator

from channels.layers import get_channel_layer
from django.conf import settings

from chat import db, events, telemetry
from chat.events import Event
from chat.models import Message
from chat.providers.base import Generation, ProviderError

from .eventlog import HEARTBEAT_SECONDS, EventLog
from .eventlog.base import LEASE_SECONDS, QUEUED
from .follow import end_orphan
from .run import Run


def no_worker() -> ProviderError:
    wait = settings.CHAT_WORKER_QUEUE_TIMEOUT_SECONDS
    return ProviderError(
        "no_worker",
        f"No generation worker took the request within {wait:g} seconds; "
        "is `manage.py generation_worker` running?",
    )


def job(key, generation: Generation, reply: Run | None = None) -> dict:
    """What a worker needs to write log `key`: a reply's (with its ids) or a bare text's."""
    ids = reply.ids if reply else None
    return {
        "type": "generate",
        "key": key,
        "reply": [ids.message_id, ids.user_message_id, ids.conversation_id] if ids else None,
        "sent_at": time.time(),
        "model": generation.model,
        "messages": generation.messages,
        # The web process's limit governs, whatever the worker's own default.
        "max_tokens": generation.max_tokens or settings.CHAT_MAX_NEW_TOKENS,
        "temperature": generation.temperature,
        "stop": list(generation.stop_sequences),
    }


async def _queue(log: EventLog, key, message: dict) -> None:
    wait = settings.CHAT_WORKER_QUEUE_TIMEOUT_SECONDS
    await log.lease(key, wait + LEASE_SECONDS, holder=QUEUED)
    await log.flush()
    await get_channel_layer().send(settings.CHAT_WORKER_CHANNEL, message)


_watching: set[asyncio.Task] = set()  # held, so that a watcher is not collected


async def dispatch(log: EventLog, run: Run) -> None:
    """Hand `run` to a worker; `run.task` ends when the reply does, wherever it was written."""
    run.log = log
    run.announce()
    await _queue(log, run.ids.message_id, job(run.ids.message_id, run.generation, run))
    telemetry.reply_started(run)
    run.task = asyncio.create_task(
        _watch(log, run), name=f"reply-{run.ids.message_id}", context=contextvars.Context()
    )
    _watching.add(run.task)
    run.task.add_done_callback(_watching.discard)


async def end_queued(log: EventLog, message_id: int, error: ProviderError | None) -> bool:
    """End a reply no worker took yet: stopped, or failed with `error`; False if one took it."""
    if not await log.lease(message_id, LEASE_SECONDS, replacing=QUEUED):
        return False
    if error:
        fields = {"status": Message.Status.FAILED, "error": error.message, "error_code": error.code}
        data = events.error_data(message_id, error.code, error.message)
    else:
        fields = {"status": Message.Status.STOPPED, "output_tokens": 0}
        data = events.done_data(message_id, Message.Status.STOPPED, None, 0, None)
    await db.finish_reply(message_id, **fields)
    await log.end(Event(message_id, 1, events.ERROR if error else events.DONE, data))
    return True


async def _watch(log: EventLog, run: Run) -> None:
    """Wait for the reply's end, without listening to it; then count it as ended."""
    mid = run.ids.message_id
    deadline = time.monotonic() + settings.CHAT_WORKER_QUEUE_TIMEOUT_SECONDS
    seq, last = 0, None
    while last is None or not last.is_terminal:
        found = await log.read(mid, seq, block=HEARTBEAT_SECONDS)
        if found:
            seq, last = found[-1].seq, found[-1]
        elif seq == 0 and time.monotonic() >= deadline:
            await end_queued(log, mid, no_worker())
        elif not await log.writing(mid):
            await end_orphan(log, mid, seq)
    await _ended(run, last)


async def _ended(run: Run, last: Event) -> None:
    data = last.data
    error = ProviderError(data["code"], data["message"]) if last.name == events.ERROR else None
    run.generation.output_tokens = data.get("output_tokens") or 0
    run.generation.prompt_tokens = data.get("prompt_tokens")
    elapsed = round((time.monotonic() - run.started) * 1000)
    final = {
        "status": data.get("status", Message.Status.FAILED),
        "ttft_ms": data.get("ttft_ms"),
        "output_tokens": run.generation.output_tokens,
        "duration_ms": data.get("duration_ms") or elapsed,
    }
    await run.finishing()
    telemetry.reply_ended(run, final, error)


async def generate_text(log: EventLog, generation: Generation) -> AsyncIterator[str]:
    """A worker's text for `generation`, stored nowhere (a title): its deltas as they come."""
    key = f"text-{uuid.uuid4().hex}"
    await _queue(log, key, job(key, generation))
    deadline = time.monotonic() + settings.CHAT_WORKER_QUEUE_TIMEOUT_SECONDS
    seq = -1
    while True:
        found = await log.read(key, seq, block=HEARTBEAT_SECONDS) or []
        for event in found:
            seq = event.seq
            if event.name == events.DELTA:
                yield event.data["text"]
            elif event.name == events.ERROR:
                raise ProviderError(event.data["code"], event.data["message"])
            elif event.is_terminal:
                generation.output_tokens = event.data.get("output_tokens") or 0
                return
        if found:
            continue
        if seq < 0 and time.monotonic() >= deadline:
            if await log.lease(key, LEASE_SECONDS, replacing=QUEUED):
                raise no_worker()
        elif not await log.writing(key):
            raise ProviderError("worker_lost", "The generation worker stopped responding.")
