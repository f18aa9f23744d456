"""What a reply tells the operator: counted in the metrics, and its end logged once.

The use-cases and the run call these small hooks at a reply's start and end, where a
listener attaches, and where a limit refuses a request; nothing here changes what the
reply does.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from chat import logs, metrics

logger = logging.getLogger("chat.replies")
# Per reply in progress: who asked, in which request, and whether it was counted.
_started: dict[int, tuple[dict, bool]] = {}


def reply_started(run) -> None:
    """`run` is starting, in the request (or websocket message) that asked for it."""
    mid = run.ids.message_id
    logs.bind(message_id=mid)
    counted = metrics.enabled()
    _started[mid] = ({**logs.current(), "conversation_id": run.ids.conversation_id}, counted)
    if counted:
        metrics.REPLIES_STARTED.labels(run.generation.model).inc()
        metrics.REPLIES_IN_PROGRESS.inc()


def reply_ended(run, final: dict, error) -> None:
    """`run` has ended with `final` (status, ttft_ms, output_tokens, duration_ms)."""
    mid = run.ids.message_id
    known, counted = _started.pop(mid, ({}, False))
    model = run.generation.model
    status = "failed" if error else str(final["status"])
    ttft, tokens, duration = final["ttft_ms"], final["output_tokens"], final["duration_ms"]
    fields = {
        **known,
        "message_id": mid,
        "model": model,
        "status": status,
        "ttft_ms": ttft,
        "output_tokens": tokens,
        "duration_ms": duration,
        "error_code": error.code if error else None,
    }
    logger.info(
        "reply %s %s: model=%s ttft=%sms tokens=%s duration=%sms",
        *(mid, status, model, ttft, tokens, duration),
        extra=fields,
    )
    if not counted:
        return
    metrics.REPLIES_IN_PROGRESS.dec()
    metrics.REPLIES_FINISHED.labels(model, status).inc()
    metrics.REPLY_DURATION.labels(model).observe(duration / 1000)
    if ttft is not None:
        metrics.REPLY_TTFT.labels(model).observe(ttft / 1000)
    if tokens:
        metrics.OUTPUT_TOKENS.labels(model).inc(tokens)


def listening(events: AsyncIterator) -> AsyncIterator:
    """`events`, counted in chat_streams_open while someone reads them."""
    return _counted(events) if metrics.enabled() else events


async def _counted(events: AsyncIterator) -> AsyncIterator:
    metrics.STREAMS_OPEN.inc()
    try:
        async with contextlib.aclosing(events):
            async for event in events:
                yield event
    finally:
        metrics.STREAMS_OPEN.dec()


def limit_refused(code: str) -> None:
    """A request was refused by a limit (429) with `code`."""
    if metrics.enabled():
        metrics.LIMIT_REFUSALS.labels(code).inc()
