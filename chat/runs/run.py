"""A reply being generated: it drives a provider, logs its events and counts its listeners."""

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
from chat.models import Message
from chat.prompt import fit_to_context
from chat.providers.base import Generation, Provider, ProviderError

from .checkpoints import checkpoints
from .log import EventLog

logger = logging.getLogger(__name__)
INTERNAL_ERROR = ProviderError("internal_error", "Something went wrong while writing this reply.")
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
        self.log = EventLog(ids.message_id)
        self.listeners = 0
        self.remote_listeners = 0
        self.task: asyncio.Task | None = None
        self._consumer: asyncio.Task | None = None
        self._stop_reason: str | None = None
        self._grace: asyncio.TimerHandle | None = None
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
        return self.log.finished

    def start(self) -> asyncio.Task:
        """Begin generating; nobody has to listen yet."""
        self.log.append(
            events.START,
            events.start_data(
                self.ids.message_id,
                self.ids.user_message_id,
                self.ids.conversation_id,
                self.generation.model,
                loading_model=not self.provider.ready(),
            ),
        )
        telemetry.reply_started(self)
        # The request that started the reply attaches right away; if it never does,
        # give it a while before treating the reply as abandoned.
        self._arm_grace(max(settings.CHAT_DISCONNECT_GRACE_SECONDS, 10))
        # A fresh context: the run outlives the request, so it must not inherit the
        # request's thread-sensitive executor (asgiref), which dies with the request.
        self.task = asyncio.create_task(
            self._main(), name=f"reply-{self.ids.message_id}", context=contextvars.Context()
        )
        return self.task

    def stop(self, reason: str = "requested") -> bool:
        """End the reply early, keeping its text; False if it had already ended."""
        if self.finished or self._stop_reason:
            return not self.finished
        self._stop_reason = reason
        self.generation.stop.set()
        if self._consumer:
            self._consumer.cancel()
        return True

    def attach(self) -> None:
        """A listener in this process arrived: the reply is wanted again."""
        self.listeners += 1
        self._listeners_changed()

    def detach(self) -> None:
        """A listener in this process left."""
        self.listeners -= 1
        self._listeners_changed()

    def set_remote_listeners(self, count: int) -> None:
        """How many listeners other processes report (through Redis)."""
        if count != self.remote_listeners:
            self.remote_listeners = count
            self._listeners_changed()

    def _listeners_changed(self) -> None:
        """Nobody left: stop after the grace period. Somebody back: keep going."""
        if self.finished:
            return
        if self.listeners + self.remote_listeners > 0:
            if self._grace:
                self._grace.cancel()
                self._grace = None
        elif self._grace is None:
            self._arm_grace(settings.CHAT_DISCONNECT_GRACE_SECONDS)

    def _arm_grace(self, seconds: float) -> None:
        if self._grace:
            self._grace.cancel()
        if seconds <= 0:
            self.stop("abandoned")
        else:
            self._grace = asyncio.get_running_loop().call_later(seconds, self.stop, "abandoned")

    async def _main(self) -> None:
        status, error = await self._generate()
        self._flush()
        final = {"status": status, **self._metrics()}
        try:
            await self._save(final, error)
        except Exception:
            logger.exception("reply %s could not be saved", self.ids.message_id)
            error = error or SAVE_ERROR
        await self._finishing()
        self._end(final, error)
        telemetry.reply_ended(self, final, error)

    async def _finishing(self) -> None:
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
            self.log.append(events.DELTA, events.delta_data("".join(self._pending)))
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
            content=self.content,
            error=error.message if error else "",
            error_code=error.code if error else "",
            **final,
        )

    def _end(self, final: dict, error: ProviderError | None) -> None:
        if self._grace:
            self._grace.cancel()
        mid = self.ids.message_id
        if error:
            self.log.append(events.ERROR, events.error_data(mid, error.code, error.message))
        else:
            self.log.append(events.DONE, events.done_data(mid, **final))
