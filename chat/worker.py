"""The generation worker: takes local-model requests off the channel layer and streams back.

Steps, for each request taken from CHAT_WORKER_CHANNEL:
1. answer `accepted` with this worker's own channel, where a `cancel` can reach it;
2. trim the prompt to the model's context with its tokenizer;
3. stream numbered `delta`s, then `end` (or `fail`), to the request's reply channel;
meanwhile a `heartbeat` goes to every reply channel this worker serves, so a web
process can tell a slow worker from a dead one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from pathlib import Path

from channels.layers import get_channel_layer
from django.conf import settings

from chat.prompt import fit_to_context
from chat.providers.base import Generation, Provider, ProviderError
from chat.providers.remote import HEARTBEAT_SECONDS, was_cancelled

logger = logging.getLogger(__name__)
ALIVE_FILE = Path("/tmp/chatsite-worker-alive")


class GenerationWorker:
    """Serves generation requests with `provider` until asked to stop."""

    def __init__(self, provider: Provider):
        self.provider = provider
        self.layer = get_channel_layer()
        self.channel: str | None = None
        self.active: dict[str, tuple[str, asyncio.Task]] = {}
        self.slots = asyncio.Semaphore(settings.CHAT_WORKER_SLOTS)
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        """Serve until SIGTERM/SIGINT, then let running replies finish (briefly)."""
        self.channel = await self.layer.new_channel()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        helpers = [asyncio.create_task(c) for c in (self._control(), self._heartbeat())]
        logger.info("generation worker ready on %s", settings.CHAT_WORKER_CHANNEL)
        await self._accept_until_stopped()
        await self._drain(timeout=10)
        for task in helpers:
            task.cancel()

    async def _accept_until_stopped(self) -> None:
        while not self.stopping.is_set():
            await self.slots.acquire()  # take work only when there is room for it
            receive = asyncio.create_task(self.layer.receive(settings.CHAT_WORKER_CHANNEL))
            stop = asyncio.create_task(self.stopping.wait())
            await asyncio.wait({receive, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if not receive.done():
                receive.cancel()
                self.slots.release()
                return
            self._start(receive.result())

    def _start(self, request: dict) -> None:
        task = asyncio.create_task(self._serve(request))
        self.active[request["request_id"]] = (request["reply_channel"], task)
        task.add_done_callback(lambda _t: self._finished(request["request_id"]))

    def _finished(self, request_id: str) -> None:
        self.active.pop(request_id, None)
        self.slots.release()

    async def _serve(self, request: dict) -> None:
        if await was_cancelled(request["request_id"]):
            return  # stopped before any worker took it: nobody waits for it any more
        reply = request["reply_channel"]
        await self.layer.send(reply, {"type": "accepted", "worker": self.channel})
        generation = Generation(
            model=request["model"],
            messages=request["messages"],
            max_tokens=request.get("max_tokens"),
            temperature=request.get("temperature"),
            stop_sequences=request.get("stop") or [],
        )
        try:
            seq = await self._stream(generation, reply)
        except ProviderError as exc:
            await self.layer.send(reply, {"type": "fail", "code": exc.code, "message": exc.message})
            return
        except Exception:
            logger.exception("generation failed")
            message = "The model failed while writing this reply."
            await self.layer.send(
                reply, {"type": "fail", "code": "generation_failed", "message": message}
            )
            return
        await self.layer.send(reply, {
            "type": "end",
            "seq": seq,
            "output_tokens": generation.output_tokens,
            "prompt_tokens": generation.prompt_tokens,
        })  # fmt: skip

    async def _stream(self, generation: Generation, reply: str) -> int:
        """Send the deltas in order; return the next sequence number."""
        generation.messages = await asyncio.to_thread(fit_to_context, self.provider, generation)
        seq = 0
        async with contextlib.aclosing(self.provider.stream(generation)) as deltas:
            async for text in deltas:
                await self.layer.send(reply, {
                    "type": "delta",
                    "seq": seq,
                    "text": text,
                    "output_tokens": generation.output_tokens,
                })  # fmt: skip
                seq += 1
        return seq

    async def _control(self) -> None:
        """Cancel requests whose reply was stopped or abandoned."""
        while True:
            message = await self.layer.receive(self.channel)
            if message.get("type") == "cancel" and message["request_id"] in self.active:
                self.active[message["request_id"]][1].cancel()

    async def _heartbeat(self) -> None:
        while True:
            ALIVE_FILE.touch()  # noqa: ASYNC240 (a tiny local write, for healthchecks)
            for reply, _task in list(self.active.values()):
                with contextlib.suppress(Exception):
                    await self.layer.send(reply, {"type": "heartbeat"})
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def _drain(self, timeout: float) -> None:
        tasks = [task for _reply, task in self.active.values()]
        if tasks:
            logger.info("waiting up to %ss for %d replies", timeout, len(tasks))
            _done, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()


def healthy(max_age: float = 15) -> bool:
    """Whether a worker on this machine has shown signs of life lately."""
    return ALIVE_FILE.exists() and time.time() - ALIVE_FILE.stat().st_mtime < max_age
