"""Load test for the proxied path: N concurrent streams through chatsite to an upstream.

    python bench/proxy_load.py --streams 300
    python bench/proxy_load.py --streams 300 --door api --py-spy /tmp/proxy.txt

It starts bench/fake_upstream.py (an OpenAI-compatible server streaming the fake model's
words at --tokens-per-second) and chatsite (uvicorn, a fresh SQLite database, an API key,
`OPENAI_BASE_URL` pointing at the upstream and `OPENAI_MODELS=bench-model`), then opens
--streams streams at once through chatsite:

* `--door v1` (default): `POST /v1/chat/completions` with `"stream": true` and
  `stream_options.include_usage`, as the `openai` clients call it;
* `--door api`: `POST /api/conversations/{id}/messages` in conversations on the upstream
  model (created first, untimed), the chat page's SSE endpoint.

`--model fake` sends the same streams to chatsite's own fake model at the same pace
instead: what a reply costs without the proxying, to set beside it.

Then the same streams go to the upstream directly (`/v1/chat/completions`), the baseline.
It prints both side by side with the ratio (through chatsite / direct): wall time (first
request to the end of the last stream), time to first token, gaps between deltas, errors,
streamed text against the expected words, stored text against the streamed (read from the
SQLite database for `v1`, through the API for `api`), whether usage came, and CPU per
stream: chatsite's and the upstream's process (user + system) over the timed phase,
divided by the streams. One stream runs first, untimed, so that first-use costs (imports,
the upstream client, connections) are not counted. The client code is stream_load.py's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import stream_load
from fake_upstream import MODEL
from server_processes import process_cpu
from stream_load import (
    PROMPT,
    LoadRun,
    Stream,
    Target,
    create_conversations,
    expected_text,
    free_port,
    gaps,
    machine_busy,
    own_cpu,
    percentile,
    run_stream,
    serve,
    spawn_chatsite,
    spawn_paced,
    ttfts,
)

BENCH = Path(__file__).resolve().parent


@dataclass
class CompletionStream(Stream):
    """A `/v1/chat/completions` stream: OpenAI's chunks, then `data: [DONE]`."""

    model: str = MODEL
    message_id: int | None = None
    usage: dict | None = None

    def request(self) -> tuple[str, dict]:
        return "/v1/chat/completions", {
            "model": self.model,
            "messages": [{"role": "user", "content": PROMPT}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }

    def on_event(self, name: str, data: str, now: float) -> None:
        if data == "[DONE]":
            self.done = True
            return
        chunk = json.loads(data)
        if "error" in chunk:
            self.fail("event", data)
            return
        number = chunk.get("id", "").removeprefix("chatcmpl-")
        self.message_id = int(number) if number.isdigit() else None
        self.usage = chunk.get("usage") or self.usage
        for choice in chunk.get("choices") or []:
            text = (choice.get("delta") or {}).get("content")
            if text:
                self.parts.append(text)
                self.tokens += len(text.split())
                self.receipts.append((now, self.tokens - 1))


@dataclass
class ProxyRun:
    load: LoadRun
    upstream_cpu: float
    stored_mismatches: int | None = None


def stored_replies(database: Path, message_ids: list[int]) -> dict[int, tuple[str, str]]:
    """Each message's stored (status, content), read straight from chatsite's SQLite file."""
    marks = ",".join("?" * len(message_ids))
    query = f"SELECT id, status, content FROM chat_message WHERE id IN ({marks})"
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        return {mid: (status, content) for mid, status, content in db.execute(query, message_ids)}


def stored_mismatches(database: Path, streams: list[CompletionStream]) -> int:
    """How many streams' stored reply is not complete, or differs from what was streamed."""
    stored = stored_replies(database, [s.message_id for s in streams if s.message_id])
    return sum(1 for s in streams if stored.get(s.message_id) != ("complete", s.text) or not s.text)


async def load(
    target: Target, upstream: Target, args: argparse.Namespace, door: str, database: Path | None
) -> ProxyRun:
    """One stream to warm up, then every stream at once against `target`; check what was stored."""
    model = MODEL if target is upstream else args.model
    await run_stream(target, CompletionStream(0, model=model), 0, args.timeout)  # first uses
    if door == "api":
        ids = await create_conversations(target, args.streams, model)
        streams = [Stream(cid) for cid in ids]
    else:
        streams = [CompletionStream(0, model=model) for _ in range(args.streams)]
    cpu, machine = own_cpu(), machine_busy()
    server_cpu, upstream_cpu = process_cpu(target.pid), process_cpu(upstream.pid)
    begin = time.monotonic()
    await asyncio.gather(*(run_stream(target, s, begin, args.timeout) for s in streams))
    wall = max(s.ended for s in streams) - begin
    server_used = process_cpu(target.pid) - server_cpu if target is not upstream else None
    run = LoadRun(streams, wall, own_cpu() - cpu, server_used, machine_busy() - machine)
    proxied = ProxyRun(run, process_cpu(upstream.pid) - upstream_cpu)
    if database is not None and not args.no_verify:  # chatsite's (a bare relay stores nothing)
        expected = expected_text(args)
        if door == "api":
            proxied.stored_mismatches = await stream_load.stored_mismatches(
                target, streams, expected
            )
        else:
            proxied.stored_mismatches = stored_mismatches(database, streams)
    return proxied


def summarize(run: ProxyRun, args: argparse.Namespace) -> dict[str, float | int | None]:
    """The figures to print, by name; times in milliseconds unless marked."""
    streams, count = run.load.streams, len(run.load.streams)

    def ms(values, pct):
        found = percentile(values, pct)
        return None if found is None else found * 1000

    kinds = [s.error for s in streams]
    server = run.load.server_cpu
    other = run.load.machine_cpu - run.load.client_cpu - (server or 0.0) - run.upstream_cpu
    completions = [s for s in streams if isinstance(s, CompletionStream)]
    return {
        "streams complete": sum(1 for s in streams if s.done and not s.error),
        "wall (s)": run.load.wall,
        "TTFT p50 (ms)": ms(ttfts(streams), 50),
        "TTFT p99 (ms)": ms(ttfts(streams), 99),
        "gap p50 (ms)": ms(gaps(streams), 50),
        "gap p99 (ms)": ms(gaps(streams), 99),
        "tokens/s": sum(s.tokens for s in streams) / run.load.wall,
        "chatsite CPU per stream (ms)": None if server is None else 1000 * server / count,
        "upstream CPU per stream (ms)": 1000 * run.upstream_cpu / count,
        "client CPU (% of a core)": 100 * run.load.client_cpu / run.load.wall,
        "other processes' CPU (% core)": 100 * max(0.0, other) / run.load.wall,
        "errors: HTTP non-200": kinds.count("http"),
        "errors: error events": kinds.count("event"),
        "errors: timeouts": kinds.count("timeout"),
        "errors: broken/early end": kinds.count("broken"),
        "streamed != expected": sum(1 for s in streams if s.text != expected_text(args)),
        "stored != streamed": run.stored_mismatches,
        "usage missing": sum(1 for s in completions if not s.usage) if completions else None,
    }


@contextlib.contextmanager
def profiled(pid: int | None, output: str) -> Iterator[None]:
    """py-spy samples process `pid` while the block runs (no-op without `output`)."""
    if not output or pid is None:
        yield
        return
    kind = {".svg": "flamegraph", ".json": "speedscope"}.get(Path(output).suffix, "raw")
    py_spy = Path(sys.executable).with_name("py-spy")
    command = [str(py_spy), "record", "--pid", str(pid), "--output", output, "--format", kind]
    spy = subprocess.Popen(
        [*command, "--rate", "250", *os.environ.get("PY_SPY_FLAGS", "--nonblocking").split()],
        stderr=subprocess.PIPE,
    )
    time.sleep(1)  # py-spy attaches before the load begins
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(30)


def measure(label: str, target: Target, upstream: Target, args, door, database=None) -> dict:
    print(f"{label}: {args.streams} streams ...", flush=True)
    with profiled(target.pid if database else None, args.py_spy):  # chatsite only
        run = asyncio.run(load(target, upstream, args, door, database))
    stream_load.print_failures(label, run.load.streams)
    return summarize(run, args)


@contextlib.contextmanager
def spawn_relay(upstream: Target, transport: str, workdir: Path) -> Iterator[Target]:
    """bench/bare_relay.py in front of the upstream, until the block ends."""
    port = free_port()
    command = [sys.executable, str(BENCH / "bare_relay.py"), "--port", str(port)]
    command += ["--upstream", f"http://127.0.0.1:{upstream.port}", "--transport", transport]
    with serve(f"relay-{transport}", command, dict(os.environ), port, workdir) as relay:
        yield relay


def measure_all(args: argparse.Namespace, workdir: Path) -> dict[str, dict]:
    """Through chatsite first, then the upstream directly, one after the other."""
    columns = {}
    with spawn_paced("upstream", "fake_upstream.py", args, workdir) as upstream:
        if not args.baseline_only:
            args.server_env += [
                f"OPENAI_BASE_URL=http://127.0.0.1:{upstream.port}/v1",
                "OPENAI_API_KEY=sk-bench",
                f"OPENAI_MODELS={MODEL}",
            ]
            with spawn_chatsite(args, workdir, "uvicorn") as chatsite:
                database = workdir / "uvicorn" / "bench.sqlite3"
                label = f"chatsite ({args.door})"
                columns[label] = measure(label, chatsite, upstream, args, args.door, database)
        for transport in ["httpx", "asyncio"] if args.relay else []:
            label = f"bare relay ({transport})"
            with spawn_relay(upstream, transport, workdir) as relay:
                columns[label] = measure(label, relay, upstream, args, "v1")
        if not args.no_baseline:
            direct = Target("direct", upstream.host, upstream.port, pid=upstream.pid)
            columns["upstream direct"] = measure("upstream direct", direct, direct, args, "v1")
    return columns


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Concurrent streams proxied by chatsite to a fake OpenAI-compatible upstream.",
        epilog="Example: python bench/proxy_load.py --streams 300",
    )
    add = parser.add_argument
    add("--streams", type=int, default=300, help="concurrent streams (default 300)")
    add("--door", choices=["v1", "api"], default="v1", help="/v1/chat/completions or /api/")
    add(
        "--model",
        default=MODEL,
        help=f"{MODEL} (the upstream's, default) or fake: chatsite's own fake model at the same "
        "pace, which shows what a reply costs without the proxying",
    )
    add("--tokens-per-second", type=float, default=20, help="the upstream's pace (20)")
    add("--tokens", type=int, default=40, help="the upstream's reply length in words (40)")
    add("--timeout", type=float, default=60.0, help="per-stream limit in seconds (60)")
    add("--no-verify", action="store_true", help="skip reading the stored replies back")
    add(
        "--relay",
        action="store_true",
        help="also the same streams through bench/bare_relay.py (a pass-through proxy on "
        "uvicorn that stores and checks nothing), with httpx's transport and with "
        "chatsite's: the least a proxy costs here",
    )
    add("--no-baseline", action="store_true", help="skip the direct run against the upstream")
    add("--baseline-only", action="store_true", help="run only against the upstream")
    add("--keep", action="store_true", help="keep the servers' logs and database")
    add("--py-spy", default="", metavar="FILE", help="profile chatsite's run (.svg, .json, raw)")
    add("--server-env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    if args.streams < 1 or args.tokens < 1 or args.tokens_per_second <= 0 or args.timeout <= 0:
        parser.error("--streams, --tokens, --tokens-per-second and --timeout must be positive")
    # What stream_load.spawn_chatsite reads: chatsite.asgi itself, no delta stamps.
    args.app, args.no_instrument = "chatsite.asgi:application", True
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    stream_load.raise_fd_limit(args.streams)
    load_before = os.getloadavg()
    columns = stream_load.in_workdir(args, measure_all, "chatsite-proxy-")
    print()
    print(f"{args.streams} streams, {args.tokens} words at {args.tokens_per_second:g}/s")
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*load_before))
    print("load average after:  {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    stream_load.report(columns)


if __name__ == "__main__":
    main()
