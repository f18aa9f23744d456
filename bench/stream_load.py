"""Load test for streamed replies: N concurrent SSE streams, timed at the client.

    python bench/stream_load.py --spawn --baseline --streams 1000
    python bench/stream_load.py --spawn --no-instrument --server uvicorn --server runserver

Each stream gets a conversation of its own (created first, untimed), then all streams
send their message together (or spread over --ramp seconds) and read the reply.

What is measured, per stream, on the client's monotonic clock:

* TTFT: from the start of the request (connect + POST) to the first `delta` received.
* Gap: the time between consecutive deltas of one stream (the fake model's pace is
  1/--tokens-per-second, so 50 ms at 20 tokens/s; coalesced deltas make longer gaps).
* Delay (emission to receipt): where a delta carries `"emitted": <time.monotonic()>`,
  receipt - emitted. Client and servers share this machine's monotonic clock. The
  baseline stamps every delta; chatsite does when spawned through
  bench/instrumented_app.py (the default with --spawn), which stamps the moment the
  delta's oldest token left the fake model, so coalescing counts as delay.
* Schedule lag: an estimate that needs no stamps. The fake model emits token k at
  about t0 + k/pace; each stream is anchored at its most punctual delta,
  t0 = min over deltas of (receipt - k/pace), k being the index of the delta's last
  token, and a delta's lag is receipt - (t0 + k/pace) >= 0. It also counts the fake
  model's own drift (each asyncio.sleep(1/pace) overshoots on a busy event loop), so
  it is far larger than the delay; compare it between servers, not with the goal.
* Throughput: tokens (whitespace-separated words of the delta texts) and deltas
  received by all streams, divided by the wall time from the first request to the end
  of the last stream.
* Errors: non-200 answers, `error` events and `done` events of a reply not complete
  (stopped), timeouts (--timeout per stream), and connections that broke or ended
  before `done`.
* Lost text: streams whose joined deltas differ from the fake model's known text, and
  (read back afterwards with GET /api/conversations/{id}) whose stored reply differs
  from it or is not `complete`.
* CPU: the client's own CPU time over the wall time, and the server's when this script
  started it (100% = one whole core; the machine may have only two), and what all other
  processes used meanwhile: figures taken while that is high are not to be trusted.

The client is plain asyncio: a minimal HTTP/1.1 writer and an incremental
chunked-transfer and SSE parser, so that the client costs little next to the server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from urllib.parse import urlsplit

from baseline_server import fake_tokens
from server_processes import ServerProcess, server_processes
from server_processes import describe as describe_processes

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
INSTRUMENTED = "instrumented_app:application"  # bench/instrumented_app.py
PROMPT = "Tell me about streaming."  # anything but the fake model's "echo "/"fail" prompts


# ---------------------------------------------------------------- a minimal HTTP client


@dataclass
class Target:
    """A server under test."""

    label: str
    host: str
    port: int
    api_key: str = ""
    pid: int | None = None  # known when this script started the server


def build_request(target: Target, method: str, path: str, body: dict | None = None) -> bytes:
    payload = b"" if body is None else json.dumps(body).encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {target.host}:{target.port}"]
    lines.append("Connection: close")
    if target.api_key:
        lines.append(f"Authorization: Bearer {target.api_key}")
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """The status code and (lower-cased) headers of a response head."""
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    return status, headers


class ChunkedDecoder:
    """Incremental Transfer-Encoding: chunked decoder: feed bytes, get chunk payloads."""

    def __init__(self):
        self.buffer = b""
        self.size: int | None = None
        self.finished = False

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        payloads = []
        while not self.finished:
            if self.size is None and not self._read_size():
                break
            if self.finished or len(self.buffer) < self.size + 2:
                break
            payloads.append(self.buffer[: self.size])
            self.buffer = self.buffer[self.size + 2 :]
            self.size = None
        return payloads

    def _read_size(self) -> bool:
        end = self.buffer.find(b"\r\n")
        if end < 0:
            return False
        self.size = int(self.buffer[:end].split(b";")[0], 16)
        self.buffer = self.buffer[end + 2 :]
        self.finished = self.size == 0
        return True


class IdentityDecoder:
    """A body without chunked framing: what arrives is the payload."""

    finished = False

    def feed(self, data: bytes) -> list[bytes]:
        return [data]


def body_decoder(headers: dict[str, str]) -> ChunkedDecoder | IdentityDecoder:
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    return ChunkedDecoder() if chunked else IdentityDecoder()


class SSEParser:
    """Incremental text/event-stream parser: feed bytes, get (event, data) pairs."""

    def __init__(self):
        self.buffer = b""

    def feed(self, data: bytes) -> list[tuple[str, str]]:
        self.buffer += data
        *frames, self.buffer = self.buffer.split(b"\n\n")
        return [event for frame in frames if (event := self._parse(frame))]

    @staticmethod
    def _parse(frame: bytes) -> tuple[str, str] | None:
        name, data = "message", []
        for line in frame.decode().split("\n"):
            field_name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field_name == "event":
                name = value
            elif field_name == "data":
                data.append(value)
        return (name, "\n".join(data)) if data else None  # comments (keepalives) carry none


async def fetch(target: Target, method: str, path: str, body: dict | None = None):
    """One plain request, within a minute: (status, JSON body or None)."""
    async with asyncio.timeout(60):
        reader, writer = await asyncio.open_connection(target.host, target.port)
        try:
            writer.write(build_request(target, method, path, body))
            raw = await reader.read()  # Connection: close, so the body ends at EOF
        finally:
            writer.close()
    head, _, rest = raw.partition(b"\r\n\r\n")
    status, headers = parse_head(head)
    data = b"".join(body_decoder(headers).feed(rest))
    return status, (json.loads(data) if data else None)


# ---------------------------------------------------------------- one stream


@dataclass
class Stream:
    """What one stream saw."""

    conversation_id: int
    started: float = 0.0
    ended: float = 0.0
    status: int | None = None
    receipts: list[tuple[float, int]] = field(default_factory=list)  # (time, last token index)
    true_delays: list[float] = field(default_factory=list)  # where deltas carry "emitted"
    parts: list[str] = field(default_factory=list)
    tokens: int = 0
    done: bool = False
    error: str | None = None  # "http", "event", "timeout" or "broken"
    detail: str = ""

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def request(self) -> tuple[str, dict]:
        """The path and body of the POST that starts this stream."""
        return f"/api/conversations/{self.conversation_id}/messages", {"content": PROMPT}

    def fail(self, kind: str, detail: str) -> None:
        if self.error is None:
            self.error, self.detail = kind, detail

    def on_event(self, name: str, data: str, now: float) -> None:
        if name == "delta":
            delta = json.loads(data)
            text = delta["text"]
            if "emitted" in delta:
                self.true_delays.append(now - delta["emitted"])
            self.parts.append(text)
            self.tokens += len(text.split())
            self.receipts.append((now, self.tokens - 1))
        elif name == "done":
            self.done = True
            if json.loads(data).get("status") != "complete":  # stopped: not the whole reply
                self.fail("event", data)
        elif name == "error":
            self.fail("event", data)


async def read_events(reader: asyncio.StreamReader, stream: Stream) -> None:
    status, headers = parse_head(await reader.readuntil(b"\r\n\r\n"))
    stream.status = status
    if status != 200:
        stream.fail("http", f"HTTP {status}: {(await reader.read(500)).decode('latin-1')}")
        return
    decoder, parser = body_decoder(headers), SSEParser()
    while not (stream.done or stream.error):
        data = await reader.read(65536)
        if not data:
            stream.fail("broken", "the connection closed before the done event")
            return
        now = time.monotonic()
        for payload in decoder.feed(data):
            for name, text in parser.feed(payload):
                stream.on_event(name, text, now)


async def run_stream(target: Target, stream: Stream, start_at: float, timeout: float) -> None:
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    path, body = stream.request()
    stream.started = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(target.host, target.port)
            try:
                writer.write(build_request(target, "POST", path, body))
                await read_events(reader, stream)
            finally:
                writer.close()
    except TimeoutError:
        stream.fail("timeout", f"no done event within {timeout:g} s")
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        stream.fail("broken", repr(exc))
    stream.ended = time.monotonic()


# ---------------------------------------------------------------- one load run


@dataclass
class LoadRun:
    streams: list[Stream]
    wall: float
    client_cpu: float
    server_cpu: float | None
    machine_cpu: float
    stored_mismatches: int | None = None
    processes: list[str] = field(default_factory=list)  # the server's, one line per role
    peak_rss_mb: float | None = None  # all the server's processes together
    rss_growth_mb: float | None = None  # their resident memory's rise during the burst


def server_look(target: Target) -> list[ServerProcess]:
    """The spawned server's processes now (none for a server this script did not start)."""
    return server_processes(target.pid) if target.pid else []


class MemoryWatch:
    """How far the server's resident memory (all its processes) rises during the burst."""

    def __init__(self, target: Target):
        self.pids = [p.pid for p in server_look(target)]
        self.first, self.growth = self.resident(), 0.0

    def resident(self) -> float:
        """MiB, all the processes together."""
        return sum(resident_mb(pid) for pid in self.pids)

    async def watch(self) -> None:
        while self.pids:
            self.growth = max(self.growth, self.resident() - self.first)
            await asyncio.sleep(0.05)


def resident_mb(pid: int) -> float:
    with contextlib.suppress(FileNotFoundError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (all cores) since boot."""
    ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def gather_bounded(coroutines, limit: int) -> list:
    gate = asyncio.Semaphore(limit)

    async def bounded(coroutine):
        async with gate:
            return await coroutine

    return await asyncio.gather(*(bounded(c) for c in coroutines))


async def create_conversations(target: Target, count: int, model: str = "fake") -> list[int]:
    answers = await gather_bounded(
        (fetch(target, "POST", "/api/conversations", {"model": model}) for _ in range(count)), 16
    )
    bad = [status for status, _ in answers if status != 201]
    if bad:
        raise SystemExit(f"{target.label}: creating conversations failed: HTTP {bad[0]}")
    return [body["id"] for _, body in answers]


async def stored_mismatches(target: Target, streams: list[Stream], expected: str) -> int:
    """How many conversations' stored reply is not the expected, complete text."""

    async def check(stream: Stream) -> bool:
        path = f"/api/conversations/{stream.conversation_id}"
        try:
            status, body = await fetch(target, "GET", path)
        except (OSError, TimeoutError, ValueError):
            return False
        replies = [m for m in (body or {}).get("messages", []) if m["role"] == "assistant"]
        good = replies and replies[-1]["content"] == expected
        return status == 200 and bool(good) and replies[-1]["status"] == "complete"

    checks = await gather_bounded((check(s) for s in streams), 16)
    return checks.count(False)


async def load(target: Target, args: argparse.Namespace) -> LoadRun:
    """Create the conversations, run every stream at once, then check what was stored."""
    ids = await create_conversations(target, args.streams)
    streams = [Stream(cid) for cid in ids]
    spacing = args.ramp / len(streams)
    cpu, server_before, machine = own_cpu(), server_look(target), machine_busy()
    begin = time.monotonic()
    memory = MemoryWatch(target)
    watch = asyncio.create_task(memory.watch())
    with profiled(target, args.profile):
        starts = (begin + i * spacing for i in range(len(streams)))
        await asyncio.gather(
            *(
                run_stream(target, s, at, args.timeout)
                for s, at in zip(streams, starts, strict=True)
            )
        )
    watch.cancel()
    wall = max(s.ended for s in streams) - begin
    server_after = server_look(target)
    server_used = sum(p.cpu for p in server_after) - sum(p.cpu for p in server_before)
    client_used, machine_used = own_cpu() - cpu, machine_busy() - machine
    run = LoadRun(streams, wall, client_used, server_used if target.pid else None, machine_used)
    if target.pid:
        run.processes = describe_processes(server_before, server_after, wall)
        run.peak_rss_mb = sum(p.peak_rss_mb for p in server_after)
        run.rss_growth_mb = memory.growth
    if not args.no_verify:
        run.stored_mismatches = await stored_mismatches(target, streams, expected_text(args))
    return run


@contextlib.contextmanager
def profiled(target: Target, prefix: str) -> Iterator[None]:
    """With --profile, py-spy samples the spawned server during the timed part only."""
    if not prefix or target.pid is None:
        yield
        return
    out = f"{prefix}-{target.label}.txt"  # py-spy's raw format: one collapsed stack a line
    spy = Path(sys.executable).parent / "py-spy"
    command = [str(spy), "record", "--pid", str(target.pid), "--rate", "200", "--format", "raw"]
    command += ["--subprocesses", *os.getenv("PYSPY_ARGS", "").split()]  # --gil: GIL holders
    recorder = subprocess.Popen([*command, "--nonblocking", "--output", out])
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(30)
        print(f"{target.label}: server profile in {out}", flush=True)


def expected_text(args: argparse.Namespace) -> str:
    return "".join(fake_tokens(args.tokens))


# ---------------------------------------------------------------- statistics


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def ttfts(streams: list[Stream]) -> list[float]:
    return [s.receipts[0][0] - s.started for s in streams if s.receipts]


def gaps(streams: list[Stream]) -> list[float]:
    return [b[0] - a[0] for s in streams for a, b in zip(s.receipts, s.receipts[1:], strict=False)]


def lags(streams: list[Stream], pace: float) -> list[float]:
    found = []
    for s in streams:
        if s.receipts:
            anchor = min(t - k / pace for t, k in s.receipts)
            found += [t - anchor - k / pace for t, k in s.receipts]
    return found


def summarize(run: LoadRun, args: argparse.Namespace) -> dict[str, float | int | None]:
    """The figures to print, by name; times in milliseconds."""
    streams, ms = run.streams, 1000

    def pct(values, p):
        found = percentile(values, p)
        return None if found is None else found * ms

    kinds = [s.error for s in streams]
    tokens, deltas = sum(s.tokens for s in streams), sum(len(s.receipts) for s in streams)
    expected = expected_text(args)
    first, gap, lag = ttfts(streams), gaps(streams), lags(streams, args.tokens_per_second)
    true = [d for s in streams for d in s.true_delays]
    other = max(0.0, run.machine_cpu - run.client_cpu - (run.server_cpu or 0.0))
    return {
        "streams complete": sum(1 for s in streams if s.done and not s.error),
        "TTFT p50 (ms)": pct(first, 50),
        "TTFT p99 (ms)": pct(first, 99),
        "gap p50 (ms)": pct(gap, 50),
        "gap p99 (ms)": pct(gap, 99),
        "delay p50 (ms)": pct(true, 50),
        "delay p99 (ms)": pct(true, 99),
        "delay max (ms)": pct(true, 100),
        "schedule lag p50 (ms)": pct(lag, 50),
        "schedule lag p99 (ms)": pct(lag, 99),
        "wall (s)": run.wall,
        "tokens received": tokens,
        "tokens/s": tokens / run.wall,
        "deltas received": deltas,
        "deltas/s": deltas / run.wall,
        "errors: HTTP non-200": kinds.count("http"),
        "errors: error events": kinds.count("event"),
        "errors: timeouts": kinds.count("timeout"),
        "errors: broken/early end": kinds.count("broken"),
        "lost text: deltas != expected": sum(1 for s in streams if s.text != expected),
        "lost text: stored != expected": run.stored_mismatches,
        "client CPU (% of a core)": 100 * run.client_cpu / run.wall,
        "server CPU (% of a core)": (
            None if run.server_cpu is None else 100 * run.server_cpu / run.wall
        ),
        "other processes' CPU (% core)": (
            None if run.server_cpu is None else 100 * other / run.wall
        ),
        "server peak RSS, all (MiB)": run.peak_rss_mb,
        # All a reply costs the server, start to end (its deltas, its title too).
        "server CPU per reply (ms)": (
            None if run.server_cpu is None else 1000 * run.server_cpu / len(streams)
        ),
        "server memory per open stream (KiB)": (
            None if run.rss_growth_mb is None else 1024 * run.rss_growth_mb / len(streams)
        ),
    }


def show(value) -> str:
    if value is None:
        return "-"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"


def report(columns: dict[str, dict]) -> None:
    """Print the result sets side by side, with ours/baseline ratios for two."""
    labels = list(columns)
    widths = [max(14, len(label) + 2) for label in labels]
    rows = list(next(iter(columns.values())))
    header = f"{'':32}" + "".join(f"{label:>{w}}" for label, w in zip(labels, widths, strict=True))
    print(header + (f"{'ratio':>10}" if len(labels) == 2 else ""))
    for row in rows:
        values = [columns[label][row] for label in labels]
        cells = "".join(f"{show(v):>{w}}" for v, w in zip(values, widths, strict=True))
        line = f"{row:32}{cells}"
        if len(values) == 2 and values[0] is not None and values[1]:
            line += f"{values[0] / values[1]:>10.2f}"
        print(line)


def print_failures(label: str, streams: list[Stream], limit: int = 3) -> None:
    failed = [s for s in streams if s.error]
    for s in failed[:limit]:
        print(f"  {label}: conversation {s.conversation_id}: {s.error}: {s.detail[:200]}")
    if len(failed) > limit:
        print(f"  {label}: ... and {len(failed) - limit} more failed streams")


# ---------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited early:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise SystemExit(f"the server did not listen on port {port} within {seconds:g} s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextlib.contextmanager
def serve(label: str, command: list[str], env: dict, port: int, workdir: Path) -> Iterator[Target]:
    """Run a server command until the block ends; its output goes to a log file."""
    log = workdir / f"{label}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
    try:
        wait_for_port(port, process, log)
        yield Target(label, "127.0.0.1", port, pid=process.pid)
    finally:
        stop(process)


def chatsite_env(args: argparse.Namespace, workdir: Path) -> dict:
    extra = server_env(args)
    # One user drives every stream: lift the per-user limits (--server-env may set them).
    unlimited = {
        "CHAT_USER_MAX_CONCURRENT_REPLIES": "1000000",
        "CHAT_USER_REPLIES_PER_MINUTE": "1000000",
        "CHAT_USER_OUTPUT_TOKENS_PER_DAY": "0",
    }
    # Settings refuse to start without a key when DEBUG is off; the run signs nothing lasting.
    key = {"SECRET_KEY": secrets.token_urlsafe(50)}
    return (
        key
        | os.environ
        | unlimited
        | extra
        | {
            "CHAT_FAKE_MODEL": "true",
            "CHAT_LOCAL_ENABLED": "false",
            "CHAT_DEFAULT_MODEL": "fake",
            "CHAT_FAKE_TOKENS_PER_SECOND": f"{args.tokens_per_second:g}",
            "CHAT_FAKE_TOKENS": str(args.tokens),
            "DATABASE_URL": extra.get("DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}"),
            # Keys of their own in a shared Redis: no run sees an earlier run's replies.
            "CHAT_REDIS_PREFIX": extra.get("CHAT_REDIS_PREFIX", f"bench-{secrets.token_hex(4)}"),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(BENCH), os.getenv("PYTHONPATH")])),
        }
    )


def server_env(args: argparse.Namespace) -> dict[str, str]:
    """The environment --server-env gives the spawned chatsite."""
    return dict(item.split("=", 1) for item in args.server_env)


def manage(env: dict | None, *arguments: str) -> str:
    """Run a manage.py command; its standard output, or exit with its errors."""
    command = [sys.executable, "manage.py", *arguments]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode:
        raise SystemExit(f"manage.py {arguments[0]} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def create_api_key(env: dict | None = None) -> str:
    """A fresh key for user 'bench' (created if missing), from manage.py."""
    return manage(env, "create_api_key", "bench", "--create-user").strip().splitlines()[-1]


def server_command(kind: str, port: int, app: str, workers: int = 1) -> list[str]:
    if kind == "daphne":
        return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), app]
    if kind == "runserver":  # Daphne through Django, as before scripts/run.sh used uvicorn
        return [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
    where = ["--host", "127.0.0.1", "--port", str(port)]
    quiet = ["--lifespan", "off", "--no-access-log", "--log-level", "warning"]
    several = ["--workers", str(workers)] if workers > 1 else []  # `app` is an import string
    return [sys.executable, "-m", "uvicorn", app, *where, *quiet, *several]


@contextlib.contextmanager
def spawn_chatsite(
    args: argparse.Namespace, workdir: Path, server: str, workers: int = 1
) -> Iterator[Target]:
    """chatsite with the fake model (on a fresh SQLite database unless --server-env names
    another), in a subprocess: `workers` uvicorn processes on one port where more than one."""
    name = server + (f"-w{workers}" if workers > 1 else "")
    label, workdir = f"chatsite-{name}", workdir / name
    workdir.mkdir()
    env = chatsite_env(args, workdir)
    manage(env, "migrate", "-v0")
    key, port = create_api_key(env), free_port()
    app = args.app or ("chatsite.asgi:application" if args.no_instrument else INSTRUMENTED)
    command = server_command(server, port, app, workers)
    with serve(label, command, env, port, workdir) as target:
        target.api_key = key
        yield target


@contextlib.contextmanager
def spawn_paced(label: str, script: str, args: argparse.Namespace, workdir: Path):
    """A server script of bench/ taking --port, --tokens-per-second and --tokens."""
    port = free_port()
    command = [sys.executable, str(BENCH / script), "--port", str(port)]
    command += ["--tokens-per-second", f"{args.tokens_per_second:g}", "--tokens", str(args.tokens)]
    with serve(label, command, dict(os.environ), port, workdir) as target:
        yield target


def spawn_baseline(args: argparse.Namespace, workdir: Path):
    return spawn_paced("baseline", "baseline_server.py", args, workdir)


def given_target(args: argparse.Namespace) -> Target:
    url = urlsplit(args.url)
    key = create_api_key() if args.setup else args.api_key or os.getenv("CHAT_API_KEY", "")
    if not key:
        raise SystemExit("pass --api-key KEY (or set CHAT_API_KEY), --setup, or --spawn")
    return Target("chatsite", url.hostname or "127.0.0.1", url.port or 80, key)


# ---------------------------------------------------------------- main


def raise_fd_limit(streams: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * streams + 256  # client sockets, plus the servers it starts (they inherit it)
    if soft < wanted:
        limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))


def measure(target: Target, args: argparse.Namespace) -> dict:
    print(f"{target.label}: {args.streams} streams ...", flush=True)
    run = asyncio.run(load(target, args))
    print_failures(target.label, run.streams)
    for line in run.processes:
        print(f"  {target.label}: {line}")
    return summarize(run, args)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Concurrent SSE streams against chatsite (and a bare baseline).",
        epilog="Example: python bench/stream_load.py --spawn --baseline --streams 1000",
    )
    add = parser.add_argument
    add("--streams", type=int, default=100, help="concurrent streams (default 100)")
    add("--url", default="http://127.0.0.1:8000", help="a running chatsite (without --spawn)")
    add("--api-key", default="", help="Bearer key for --url (default: $CHAT_API_KEY)")
    add("--setup", action="store_true", help="make a key with manage.py create_api_key")
    add("--spawn", action="store_true", help="start chatsite itself, on a fresh database")
    add(
        "--server",
        action="append",
        choices=["uvicorn", "daphne", "runserver"],
        help="for --spawn (default uvicorn); repeat it to measure several in turn",
    )
    add(
        "--workers",
        action="append",
        type=int,
        help="uvicorn processes on one port, for --spawn (default 1; more need REDIS_URL in "
        "--server-env); repeat it to measure several counts in turn",
    )
    add("--baseline", action="store_true", help="also load bench/baseline_server.py")
    add("--tokens-per-second", type=float, default=20, help="the fake model's pace (20)")
    add("--tokens", type=int, default=40, help="the fake model's reply length (40)")
    add("--ramp", type=float, default=0.0, help="spread the stream starts over SECONDS")
    add("--timeout", type=float, default=60.0, help="per-stream limit in seconds (60)")
    add("--no-verify", action="store_true", help="skip reading the stored replies back")
    add("--baseline-only", action="store_true", help="load only the baseline")
    add("--profile", default="", metavar="PREFIX", help="py-spy the server: PREFIX-LABEL.txt")
    add("--keep", action="store_true", help="keep the spawned servers' logs and database")
    add("--no-instrument", action="store_true", help="serve chatsite.asgi, unstamped")
    add("--app", default="", help="ASGI app for --spawn (default: the instrumented chatsite)")
    add(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the spawned chatsite, e.g. CHAT_CHECKPOINT_SECONDS=5",
    )
    args = parser.parse_args(argv)
    if args.streams < 1 or args.tokens < 1 or args.tokens_per_second <= 0 or args.timeout <= 0:
        parser.error("--streams, --tokens, --tokens-per-second and --timeout must be positive")
    if any("=" not in item for item in args.server_env):
        parser.error("--server-env takes NAME=VALUE")
    if urlsplit(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        parser.error("--url must be a loopback address")
    args.server = list(dict.fromkeys(args.server or ["uvicorn"]))
    if "runserver" in args.server and not args.no_instrument:
        parser.error("--server runserver serves chatsite.asgi: add --no-instrument")
    args.workers = list(dict.fromkeys(args.workers or [1]))
    if min(args.workers) < 1:
        parser.error("--workers must be positive")
    if max(args.workers) > 1 and args.server != ["uvicorn"]:
        parser.error("--workers above 1 is for --server uvicorn only")
    if max(args.workers) > 1 and not server_env(args).get("REDIS_URL", os.getenv("REDIS_URL")):
        parser.error(
            "--workers above 1 needs --server-env REDIS_URL=redis://...: the processes "
            "share replies, limits and event logs through it"
        )
    return args


def measure_all(args: argparse.Namespace, workdir: Path) -> dict[str, dict]:
    """Our servers first, then the baseline: one at a time, so none steals CPU from another."""
    columns = {}
    if not args.baseline_only and not args.spawn:
        ours = given_target(args)
        columns[ours.label] = measure(ours, args)
    spawned = args.spawn and not args.baseline_only
    for server, workers in product(args.server, args.workers) if spawned else []:
        with spawn_chatsite(args, workdir, server, workers) as ours:
            columns[ours.label] = measure(ours, args)
    if args.baseline or args.baseline_only:
        with spawn_baseline(args, workdir) as baseline:
            columns["baseline"] = measure(baseline, args)
    return columns


def in_workdir(args: argparse.Namespace, measure_all, prefix: str) -> dict[str, dict]:
    """`measure_all(args, workdir)` in a temporary folder, or in one kept with --keep."""
    if args.keep:
        workdir = Path(tempfile.mkdtemp(prefix=prefix))
        columns = measure_all(args, workdir)
        print(f"server logs and database kept in {workdir}")
        return columns
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        return measure_all(args, Path(tmp))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    raise_fd_limit(args.streams)
    columns = in_workdir(args, measure_all, "chatsite-bench-")
    print()
    print(f"{args.streams} streams, {args.tokens} tokens at {args.tokens_per_second:g}/s")
    report(columns)


if __name__ == "__main__":
    main()
