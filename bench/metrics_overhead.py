"""What the metrics cost on the streaming path, per reply and per event, on and off.

    python bench/metrics_overhead.py [--replies 20000] [--events 200000] [--multiprocess]

Times, with CHAT_METRICS_TOKEN unset and set: a reply's start and end hooks
(chat.telemetry.reply_started / reply_ended, the log line at its end included, sent to a
null handler), the request middleware's counting, and each event passing through
chat_streams_open's wrapper. `--multiprocess` sets PROMETHEUS_MULTIPROC_DIR (a
temporary folder) first, where every change is also written to a memory-mapped file.
A load test (stream_load.py) on a busy machine cannot see costs this small; this can.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent


def setup(multiprocess: bool) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    os.environ.setdefault("SECRET_KEY", "bench")
    if multiprocess:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="metrics-bench-")
    import django

    django.setup()
    logging.getLogger("chat.replies").handlers = [logging.NullHandler()]
    logging.getLogger("chat.replies").propagate = False


def fake_run(n: int):
    return SimpleNamespace(
        ids=SimpleNamespace(message_id=n, conversation_id=1),
        generation=SimpleNamespace(model="fake"),
    )


def time_replies(count: int) -> float:
    """Microseconds per reply for its start and end hooks."""
    from chat import logs, telemetry

    final = {"status": "complete", "ttft_ms": 84, "output_tokens": 41, "duration_ms": 1730}
    logs.open_context("bench")
    started = time.perf_counter()
    for n in range(count):
        run = fake_run(n)
        telemetry.reply_started(run)
        telemetry.reply_ended(run, final, None)
    return (time.perf_counter() - started) / count * 1e6


def time_requests(count: int) -> float:
    """Microseconds per request for the middleware's counting (when on)."""
    from chat import metrics

    started = time.perf_counter()
    for _ in range(count):
        if metrics.enabled():
            metrics.HTTP_REQUESTS.labels("POST", "api/x", 200).inc()
            metrics.HTTP_LATENCY.labels("POST", "api/x").observe(0.003)
    return (time.perf_counter() - started) / count * 1e6


def time_events(count: int) -> float:
    """Microseconds per event through telemetry.listening, minus a bare async generator."""
    from chat import telemetry

    async def events():
        for n in range(count):
            yield n

    async def drain(stream) -> float:
        started = time.perf_counter()
        async for _event in stream:
            pass
        return time.perf_counter() - started

    async def both():
        bare = await drain(events())
        wrapped = await drain(telemetry.listening(events()))
        return (wrapped - bare) / count * 1e6

    return asyncio.run(both())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replies", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--multiprocess", action="store_true")
    args = parser.parse_args()
    setup(args.multiprocess)
    from django.conf import settings

    mode = "multiprocess files" if args.multiprocess else "in-process"
    print(f"metrics {mode}; {args.replies:,} replies, {args.events:,} events")
    print(f"{'':32}{'metrics off':>14}{'metrics on':>14}")
    rows = {}
    for token in ("", "bench-token"):
        settings.CHAT_METRICS_TOKEN = token
        rows.setdefault("reply start + end (µs/reply)", []).append(time_replies(args.replies))
        rows.setdefault("request counting (µs/request)", []).append(time_requests(args.replies))
        rows.setdefault("stream wrapper (µs/event)", []).append(time_events(args.events))
    for name, (off, on) in rows.items():
        print(f"{name:32}{off:>14.2f}{on:>14.2f}")


if __name__ == "__main__":
    main()
