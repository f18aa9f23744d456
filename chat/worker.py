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
from collections import deque
from pathlib import Path

from channels.layers import get_channel_layer
from django.conf import settings
from prometheus_client import start_http_server

from chat import metrics
from chat.prompt import fit_to_context
from chat.providers.base import Generation, Provider, ProviderError
from chat.providers.remote import HEARTBEAT_SECONDS, was_cancelled

logger = logging.getLogger(__name__)
ALIVE_FILE = Path("/tmp/chatsite-worker-alive")
RATE_WINDOW_SECONDS = 10  # chat_worker_tokens_per_second averages over this long


class GenerationWorker:
    """Serves generation requests with `provider` until asked to stop."""

    def __init__(self, provider: Provider):
        self.provider = provider
        self.layer = get_channel_layer()
        self.channel: str | None = None
        self.active: dict[str, tuple[str, asyncio.Task]] = {}
        self.slots = asyncio.Semaphore(settings.CHAT_LOCAL_MAX_CONCURRENCY)
        self.stopping = asyncio.Event()
        self.generated = 0  # tokens, for the rate gauge
        self.token_samples: deque[tuple[float, int]] = deque()

    async def run(self) -> None:
        """Serve until SIGTERM/SIGINT, then let running replies finish (briefly)."""
        self.channel = await self.layer.new_channel()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        self._serve_metrics()
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
        metrics.WORKER_BUSY.set(len(self.active))
        task.add_done_callback(lambda t: self._finished(request["request_id"], t))

    def _finished(self, request_id: str, task: asyncio.Task) -> None:
        self.active.pop(request_id, None)
        self.slots.release()
        metrics.WORKER_BUSY.set(len(self.active))
        if task.cancelled():
            outcome = "cancelled"
        else:
            outcome = "failed" if task.exception() else task.result()
        metrics.WORKER_REQUESTS.labels(outcome).inc()

    async def _serve(self, request: dict) -> str:
        """Generate one reply; say how it ended (complete, failed or cancelled)."""
        if await was_cancelled(request["request_id"]):
            return "cancelled"  # given up before any worker took it: nobody waits for it
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
            return "failed"
        except Exception:
            logger.exception("generation failed")
            message = "The model failed while writing this reply."
            await self.layer.send(
                reply, {"type": "fail", "code": "generation_failed", "message": message}
            )
            return "failed"
        await self.layer.send(reply, {
            "type": "end",
            "seq": seq,
            "output_tokens": generation.output_tokens,
            "prompt_tokens": generation.prompt_tokens,
        })  # fmt: skip
        return "complete"

    async def _stream(self, generation: Generation, reply: str) -> int:
        """Send the deltas in order; return the next sequence number."""
        generation.messages = await asyncio.to_thread(fit_to_context, self.provider, generation)
        seq = counted = 0
        async with contextlib.aclosing(self.provider.stream(generation)) as deltas:
            async for text in deltas:
                self._count_tokens(generation.output_tokens - counted)
                counted = generation.output_tokens
                await self.layer.send(reply, {
                    "type": "delta",
                    "seq": seq,
                    "text": text,
                    "output_tokens": generation.output_tokens,
                })  # fmt: skip
                seq += 1
        self._count_tokens(generation.output_tokens - counted)
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
            await self._sample_metrics()
            await asyncio.sleep(HEARTBEAT_SECONDS)

    def _count_tokens(self, count: int) -> None:
        self.generated += count
        metrics.WORKER_TOKENS.inc(count)

    def _serve_metrics(self) -> None:
        """Serve this worker's metrics on CHAT_WORKER_METRICS_PORT, if one is set."""
        metrics.WORKER_SLOTS.set(settings.CHAT_LOCAL_MAX_CONCURRENCY)
        port = settings.CHAT_WORKER_METRICS_PORT
        if port:
            start_http_server(port, registry=metrics.WORKER_REGISTRY)
            logger.info("worker metrics on port %d", port)

    async def _sample_metrics(self) -> None:
        """The gauges that are rates or live elsewhere: tokens per second, the queue."""
        now, total = time.monotonic(), self.generated
        self.token_samples.append((now, total))
        while now - self.token_samples[0][0] > RATE_WINDOW_SECONDS:
            self.token_samples.popleft()
        then, before = self.token_samples[0]
        metrics.WORKER_TOKEN_RATE.set((total - before) / (now - then) if now > then else 0)
        with contextlib.suppress(Exception):  # the queue's length is news, not a duty
            metrics.WORKER_QUEUE.set(await queue_depth(self.layer, settings.CHAT_WORKER_CHANNEL))

    async def _drain(self, timeout: float) -> None:
        tasks = [task for _reply, task in self.active.values()]
        if tasks:
            logger.info("waiting up to %ss for %d replies", timeout, len(tasks))
            _done, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()


async def queue_depth(layer, channel: str) -> int:
    """How many requests wait in `channel` (a channels-redis queue: a sorted set)."""
    connection = layer.connection(layer.consistent_hash(channel))
    return await connection.zcard(layer.prefix + channel)


def healthy(max_age: float = 15) -> bool:
    """Whether a worker on this machine has shown signs of life lately."""
    return ALIVE_FILE.exists() and time.time() - ALIVE_FILE.stat().st_mtime < max_age
