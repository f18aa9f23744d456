"""Streaming replies' text, saved together once per interval so a crash loses little of it."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import TYPE_CHECKING

from django.conf import settings

from chat import db

if TYPE_CHECKING:
    from .run import Run

logger = logging.getLogger(__name__)


class Checkpointer:
    """Collects the replies that changed and writes them all in one transaction.

    One write a second for the whole process, rather than one per reply: at a
    thousand concurrent replies that is the difference between a busy database
    thread and an idle one.
    """

    def __init__(self):
        self._changed: dict[int, Run] = {}
        self._task: asyncio.Task | None = None

    def changed(self, run: Run) -> None:
        """Note that `run` has new text to save at the next checkpoint."""
        self._changed[run.ids.message_id] = run
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = loop.create_task(
                self._save_while_changing(), context=contextvars.Context()
            )

    async def _save_while_changing(self) -> None:
        while self._changed:
            await asyncio.sleep(settings.CHAT_CHECKPOINT_SECONDS)
            batch, self._changed = self._changed, {}
            contents = {mid: run.content for mid, run in batch.items() if not run.finished}
            if not contents:
                continue
            try:
                await db.checkpoint_replies(contents)
            except Exception:
                logger.exception("checkpoint of %d replies failed", len(contents))


checkpoints = Checkpointer()
