"""The generation worker: takes local-model jobs off the channel layer and writes their logs.

Steps, for each job taken from CHAT_WORKER_CHANNEL:
1. take the job's event log from `queued` (a job stopped or given up on meanwhile
   cannot be taken, and is skipped);
2. generate the reply as any writer does (`chat.runs.Run`): its deltas and its end go
   to the log, its text to the database; the heartbeat, the stop flag and the listeners
   are the registry's, as in a web process. A job with no reply (a title) only logs text.
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

from chat import events, metrics
from chat.events import Event
from chat.models import Message
from chat.prompt import fit_to_context
from chat.providers.base import Generation, Provider, ProviderError
from chat.runs import ReplyIds, Run, registry
from chat.runs.eventlog import HEARTBEAT_SECONDS
from chat.runs.eventlog.base import QUEUED

logger = logging.getLogger(__name__)
ALIVE_FILE = Path("/tmp/chatsite-worker-alive")
RATE_WINDOW_SECONDS = 10  # chat_worker_tokens_per_second averages over this long
TEXT_LEASE_SECONDS = 60  # a text (a title) is short: its lease is not renewed
OUTCOMES = {Message.Status.COMPLETE: "complete", Message.Status.STOPPED: "cancelled"}


class GenerationWorker:
    """Serves generation jobs with `provider` until asked to stop."""

    def __init__(self, provider: Provider):
        self.provider = provider
        self.layer = get_channel_layer()
        self.registry = registry()
        self.log = self.registry.log
        self.active: dict[str, tuple[Generation, asyncio.Task]] = {}
        self.slots = asyncio.Semaphore(settings.CHAT_LOCAL_MAX_CONCURRENCY)
        self.stopping = asyncio.Event()
        self.generated = 0  # tokens, for the rate gauge
        self.done_tokens = 0  # of the jobs that ended
        self.token_samples: deque[tuple[float, int]] = deque()

    async def run(self) -> None:
        """Serve until SIGTERM/SIGINT, then let running replies finish (briefly)."""
        reaped = await self.registry.reap()
        if reaped:
            logger.warning("marked %d interrupted replies as failed", reaped)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        self._serve_metrics()
        heartbeat = asyncio.create_task(self._heartbeat())
        logger.info("generation worker ready on %s", settings.CHAT_WORKER_CHANNEL)
        await self._accept_until_stopped()
        await self._drain(timeout=10)
        heartbeat.cancel()

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

    def _start(self, job: dict) -> None:
        generation = Generation(
            model=job["model"],
            messages=job["messages"],
            max_tokens=job.get("max_tokens"),
            temperature=job.get("temperature"),
            stop_sequences=job.get("stop") or [],
        )
        task = asyncio.create_task(self._serve(job, generation))
        self.active[job["key"]] = (generation, task)
        metrics.WORKER_BUSY.set(len(self.active))
        task.add_done_callback(lambda t: self._finished(job["key"], t))

    def _finished(self, key: str, task: asyncio.Task) -> None:
        generation, _task = self.active.pop(key)
        self.done_tokens += generation.output_tokens
        self._count_tokens()
        self.slots.release()
        metrics.WORKER_BUSY.set(len(self.active))
        if task.cancelled():
            outcome = "cancelled"
        else:
            outcome = "failed" if task.exception() else task.result()
        metrics.WORKER_REQUESTS.labels(outcome).inc()

    async def _serve(self, job: dict, generation: Generation) -> str:
        """Write one job's log; say how it ended (complete, failed or cancelled)."""
        key, reply = job["key"], job.get("reply")
        lease = HEARTBEAT_SECONDS * 3 if reply else TEXT_LEASE_SECONDS
        if not await self.log.lease(key, lease, replacing=QUEUED):
            return "cancelled"  # stopped or given up before this worker took it
        if reply is None:
            return await self._text(key, generation)
        # The request's start, on this process's clock (the machines' clocks agree closely).
        started = time.monotonic() - max(0.0, time.time() - job["sent_at"])
        run = Run(ReplyIds(*reply), self.provider, generation, started)
        await self.registry.launch(run, taken=True)
        await run.task
        return OUTCOMES.get(run.outcome, "failed")

    async def _text(self, key: str, generation: Generation) -> str:
        """Log a text nobody stores (a title): its deltas, then its end."""
        seq = 0
        try:
            generation.messages = await asyncio.to_thread(fit_to_context, self.provider, generation)
            async with contextlib.aclosing(self.provider.stream(generation)) as deltas:
                async for text in deltas:
                    self.log.append(Event(key, seq, events.DELTA, events.delta_data(text)))
                    seq += 1
        except ProviderError as exc:
            self.log.append(
                Event(key, seq, events.ERROR, events.error_data(0, exc.code, exc.message))
            )
            await self.log.flush()
            return "failed"
        done = {"status": Message.Status.COMPLETE, "output_tokens": generation.output_tokens}
        self.log.append(Event(key, seq, events.DONE, done))
        await self.log.flush()
        return "complete"

    async def _heartbeat(self) -> None:
        while True:
            ALIVE_FILE.touch()  # noqa: ASYNC240 (a tiny local write, for healthchecks)
            self._count_tokens()
            await self._sample_metrics()
            await asyncio.sleep(HEARTBEAT_SECONDS)

    def _count_tokens(self) -> None:
        total = self.done_tokens + sum(g.output_tokens for g, _task in self.active.values())
        if total > self.generated:
            metrics.WORKER_TOKENS.inc(total - self.generated)
            self.generated = total

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
        tasks = [task for _generation, task in self.active.values()]
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
