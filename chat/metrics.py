"""Prometheus metrics: what web processes count, what generation workers count, and /metrics.

Names follow ../shared/API.md (Metrics). A web process counts only when
CHAT_METRICS_TOKEN is set (nobody could read the figures otherwise), so a site without
monitoring pays nothing for it. With PROMETHEUS_MULTIPROC_DIR set, prometheus_client
keeps each process's values in a file there and /metrics sums them, so several uvicorn
workers behind one port answer as one. Generation workers keep theirs in a registry of
their own, served on CHAT_WORKER_METRICS_PORT (chat/worker.py).
"""

from __future__ import annotations

import glob
import os
import re

from django.conf import settings
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Time to first token runs from a few tens of ms (a warm GPU) to tens of seconds (a queue).
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
DURATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# The codes replies are refused with (API.md: Errors), listed so their series start at 0.
LIMIT_CODES = ("too_many_replies", "rate_limited", "quota_exceeded")

# ---- web processes (the default registry)

REPLIES_STARTED = Counter("chat_replies_started", "Replies started.", ["model"])
REPLIES_FINISHED = Counter(
    "chat_replies_finished", "Replies ended, by how they ended.", ["model", "status"]
)
REPLY_TTFT = Histogram(
    "chat_reply_ttft_seconds",
    "Time from a message's arrival to its reply's first token.",
    ["model"],
    buckets=TTFT_BUCKETS,
)
REPLY_DURATION = Histogram(
    "chat_reply_duration_seconds",
    "Time from a message's arrival to its reply's end.",
    ["model"],
    buckets=DURATION_BUCKETS,
)
OUTPUT_TOKENS = Counter("chat_reply_output_tokens", "Tokens the models wrote.", ["model"])
REPLIES_IN_PROGRESS = Gauge(
    "chat_replies_in_progress",
    "Replies this process is writing now.",
    multiprocess_mode="livesum",
)
STREAMS_OPEN = Gauge(
    "chat_streams_open",
    "Listeners (SSE, websocket, /v1 streams) connected to this process.",
    multiprocess_mode="livesum",
)
LIMIT_REFUSALS = Counter("chat_limit_refusals", "Requests refused by a limit.", ["code"])
HTTP_REQUESTS = Counter(
    "chat_http_requests", "HTTP requests answered.", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "chat_http_request_duration_seconds",
    "Time to a response's headers (for a stream: to its start).",
    ["method", "route"],
    buckets=HTTP_BUCKETS,
)
for _code in LIMIT_CODES:
    LIMIT_REFUSALS.labels(_code)

# ---- generation workers (a registry of their own, never mixed with a web process's)

WORKER_REGISTRY = CollectorRegistry()
WORKER_SLOTS = Gauge(
    "chat_worker_slots", "Replies this worker may generate at once.", registry=WORKER_REGISTRY
)
WORKER_BUSY = Gauge(
    "chat_worker_slots_busy", "Replies this worker is generating now.", registry=WORKER_REGISTRY
)
WORKER_QUEUE = Gauge(
    "chat_worker_queue_depth",
    "Requests waiting in CHAT_WORKER_CHANNEL for any worker to take them.",
    registry=WORKER_REGISTRY,
)
WORKER_TOKENS = Counter(
    "chat_worker_output_tokens", "Tokens this worker generated.", registry=WORKER_REGISTRY
)
WORKER_TOKEN_RATE = Gauge(
    "chat_worker_tokens_per_second",
    "Tokens this worker generated per second, over the last few seconds.",
    registry=WORKER_REGISTRY,
)
WORKER_REQUESTS = Counter(
    "chat_worker_requests",
    "Requests this worker served, by how they ended.",
    ["status"],
    registry=WORKER_REGISTRY,
)
ProcessCollector(registry=WORKER_REGISTRY)


def enabled() -> bool:
    """Whether this web process counts: only when someone may scrape it."""
    return bool(settings.CHAT_METRICS_TOKEN)


def exposition() -> bytes:
    """This process's metrics (all of this host's processes', in multiprocess mode)."""
    path = settings.PROMETHEUS_MULTIPROC_DIR
    if not path:
        from prometheus_client import REGISTRY

        return generate_latest(REGISTRY)
    _forget_dead_processes(path)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)
    return generate_latest(registry)


def _forget_dead_processes(path: str) -> None:
    """Drop the live gauges of processes that are gone (a uvicorn worker that was replaced).

    Their counters stay: a counter's total must never go down.
    """
    pids = {
        int(match.group(1))
        for name in glob.glob(os.path.join(path, "gauge_live*_*.db"))
        if (match := re.search(r"_(\d+)\.db$", name))
    }
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, path)
        except PermissionError:
            pass  # alive, under another user
