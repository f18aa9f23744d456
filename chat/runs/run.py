"""A reply being generated: it drives a provider and writes the reply's event log."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from django.conf import settings

from chat import db, events, telemetry
from chat.events import Event
from chat.models import Message
from chat.prompt import fit_to_context
from chat.providers.base import Generation, Provider, ProviderError

from .checkpoints import checkpoints
from .eventlog import EventLog, Pulse

logger = logging.getLogger(__name__)
INTERNAL_ERROR = ProviderError("internal_error", "Something went wrong while writing this reply.")
# Trimming a prompt this long by estimate takes well under a millisecond.
INLINE_FIT_MESSAGES = 200
SAVE_ERROR = ProviderError("save_failed", "The reply could not be saved; please try again.")


@dataclass(frozen=True)
class ReplyIds:
    message_id: int
    user_message_id: int
    conversation_id: int


class Run:
    """One reply, alive apart from any HTTP request that watches it."""

    def __init__(self, ids: ReplyIds, provider: Provider, generation: Generation, started: float):
        self.ids = ids
        self.provider = provider
        self.generation = generation
        self.started = started
        self.log: EventLog | None = None
        self.task: asyncio.Task | None = None
        self._seq = 0
        self._ended = False
        self._consumer: asyncio.Task | None = None
        self._stop_reason: str | None = None
        self.outcome: str | None = None  # its status once it ended, `failed` if it did
        # Nobody listening since (monotonic), and whether anybody ever did.
        self._unwatched_since: float | None = started
        self._watched = False
        self._parts: list[str] = []
        self._pending: list[str] = []
        self._last_flush = float("-inf")
        self._flush_handle: asyncio.TimerHandle | None = None
        self._first_token: float | None = None
        # Awaited as the reply ends, before anyone hears it did (the limits count its tokens).
        self.on_finish: Callable[[Run], Awaitable[None]] | None = None

    @property
    def content(self) -> str:
        return "".join(self._parts)

    @property
    def finished(self) -> bool:
        return self._ended

    def start(self, log: EventLog, taken: bool = False) -> asyncio.Task:
        """Begin generating, writing to `log`; nobody has to listen yet.

        `taken`: the reply was dispatched to this worker, its `start` already logged.
        """
        self.log = log
        if taken:
            self._seq = 1
        else:
            self.announce()
        telemetry.reply_started(self)
        # A fresh context: the run outlives the request, so it must not inherit the
        # request's thread-sensitive executor (asgiref), which dies with the request.
        self.task = asyncio.create_task(
            self._main(), name=f"reply-{self.ids.message_id}", context=contextvars.Context()
        )
        return self.task

    def announce(self) -> None:
        """Log the reply's `start`."""
        self._append(
            events.START,
            events.start_data(
                self.ids.message_id,
                self.ids.user_message_id,
                self.ids.conversation_id,
                self.generation.model,
                loading_model=not self.provider.ready(),
            ),
        )

    def stop(self, reason: str = "requested") -> bool:
        """End the reply early, keeping its text; False if it had already ended."""
        if self.finished or self._stop_reason:
            return not self.finished
        self._stop_reason = reason
        self.generation.stop.set()
        if self._consumer:
            self._consumer.cancel()
        return True

    def heard(self, pulse: Pulse) -> bool:
        """Obey the log's stop flag; say whether nobody has listened for the grace period."""
        if pulse.stop:
            self.stop("requested")
            return False
        now = time.monotonic()
        self._watched = self._watched or pulse.listened or pulse.listeners > 0
        if pulse.listeners:
            self._unwatched_since = None
            return False
        if self._unwatched_since is None:
            self._unwatched_since = now
        grace = settings.CHAT_DISCONNECT_GRACE_SECONDS
        # The request that started the reply listens right away; if it never does,
        # give it a while before treating the reply as abandoned.
        return now - self._unwatched_since >= (grace if self._watched else max(grace, 10))

    def _append(self, name: str, data: dict) -> None:
        event = Event(self.ids.message_id, self._seq, name, data)
        self._seq += 1
        self._ended = event.is_terminal
        self.log.append(event)

    async def _main(self) -> None:
        status, error = await self._generate()
        self._flush()
        final = {"status": status, **self._metrics()}
        try:
            await self._save(final, error)
        except Exception:
            logger.exception("reply %s could not be saved", self.ids.message_id)
            error = error or SAVE_ERROR
        await self.finishing()
        self.outcome = Message.Status.FAILED if error else status
        self._end(final, error)
        telemetry.reply_ended(self, final, error)

    async def finishing(self) -> None:
        """Run the end hook (the limits count the reply's tokens), surviving its failure."""
        try:
            if self.on_finish:
                await self.on_finish(self)
        except Exception:
            logger.exception("reply %s: on_finish failed", self.ids.message_id)

    async def _generate(self) -> tuple[str, ProviderError | None]:
        """Run the provider to its end; say how it ended."""
        if self._stop_reason:
            return Message.Status.STOPPED, None
        self._consumer = asyncio.create_task(self._consume())
        try:
            await self._consumer
        except asyncio.CancelledError:
            if self._stop_reason is None or asyncio.current_task().cancelling():
                raise
            return Message.Status.STOPPED, None
        except ProviderError as exc:
            return Message.Status.FAILED, exc
        except Exception:
            logger.exception("reply %s failed", self.ids.message_id)
            return Message.Status.FAILED, INTERNAL_ERROR
        return Message.Status.COMPLETE, None

    async def _consume(self) -> None:
        gen = self.generation
        if self.provider.counts_cheaply and len(gen.messages) <= INLINE_FIT_MESSAGES:
            gen.messages = fit_to_context(self.provider, gen)  # arithmetic: no thread for it
        else:
            gen.messages = await asyncio.to_thread(fit_to_context, self.provider, gen)
        async with contextlib.aclosing(self.provider.stream(gen)) as deltas:
            async for text in deltas:
                if text:
                    self._on_text(text)

    def _on_text(self, text: str) -> None:
        now = time.monotonic()
        if self._first_token is None:
            self._first_token = now
        self._parts.append(text)
        self._pending.append(text)
        # Coalesce: the first delta goes out at once, later ones at most every interval.
        interval = settings.CHAT_DELTA_INTERVAL_MS / 1000
        wait = self._last_flush + interval - now
        if wait <= 0:
            self._flush()
        elif self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(wait, self._flush)
        checkpoints.changed(self)

    def _flush(self) -> None:
        if self._flush_handle:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._pending:
            self._append(events.DELTA, events.delta_data("".join(self._pending)))
            self._pending.clear()
            self._last_flush = time.monotonic()

    def _metrics(self) -> dict:
        end = time.monotonic()
        ttft = self._first_token - self.started if self._first_token else None
        return {
            "ttft_ms": round(ttft * 1000) if ttft is not None else None,
            "output_tokens": self.generation.output_tokens,
            "duration_ms": round((end - self.started) * 1000),
        }

    async def _save(self, final: dict, error: ProviderError | None) -> None:
        # A checkpoint that runs after this write finds the reply no longer streaming,
        # so it can never overwrite the final text with an older one.
        await db.finish_reply(
            self.ids.message_id,
            self.ids.conversation_id,
            content=self.content,
            error=error.message if error else "",
            error_code=error.code if error else "",
            **final,
        )

    def _end(self, final: dict, error: ProviderError | None) -> None:
        mid = self.ids.message_id
        if error:
            self._append(events.ERROR, events.error_data(mid, error.code, error.message))
        else:
            prompt = self.generation.prompt_tokens
            self._append(events.DONE, events.done_data(mid, **final, prompt_tokens=prompt))
