"""How long another user's send waits while a big history import is being written.

Starts chatsite (fake model, a fresh SQLite database in a temporary folder) under uvicorn,
then:

1. baseline: user `bob` sends `--sends` messages one after another and each send's wait
   is timed: from the POST to the reply's `start` event (the user's message is stored and
   the reply begun by then);
2. contention: user `alice` imports one conversation of `--messages` messages
   (`POST /api/import`) while bob keeps sending, one send after another, until the import
   has answered.

It prints the import's duration and bob's waits (p50, p99, max) in both phases. The
target is a max under 0.5 s during the import.

    .venv/bin/python bench/import_contention.py --messages 20000
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def environment(workdir: Path) -> dict:
    return os.environ | {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}",
        "CHAT_FAKE_MODEL": "true",
        "CHAT_LOCAL_ENABLED": "false",
        "CHAT_DEFAULT_MODEL": "fake",
        "CHAT_FAKE_TOKENS_PER_SECOND": "1000",
        "CHAT_FAKE_TOKENS": "5",
        "REDIS_URL": "",
        # Bob sends one message after another: the per-user limits would refuse him.
        "CHAT_USER_REPLIES_PER_MINUTE": "1000000",
        "CHAT_USER_OUTPUT_TOKENS_PER_DAY": "0",
    }


def manage(env: dict, *arguments: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(env: dict, workdir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    quiet = ["--lifespan", "off", "--no-access-log", "--log-level", "warning"]
    command = [sys.executable, "-m", "uvicorn", "chatsite.asgi:application", "--port", str(port)]
    command += quiet
    log = (workdir / "server.log").open("wb")
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url + "/healthz", timeout=1)
            return server, url
        except httpx.TransportError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit((workdir / "server.log").read_text()) from None
            time.sleep(0.1)


def history(messages: int) -> bytes:
    """One conversation of `messages` messages, in our export format."""
    moment = "2025-03-01T09:00:00+00:00"
    turns = [
        {"role": ("user", "assistant")[i % 2], "content": f"message {i} " + "x" * 60,
         "status": "complete", "created_at": moment}
        for i in range(messages)
    ]  # fmt: skip
    conversation = {"title": "Big", "model": "fake", "created_at": moment, "updated_at": moment,
                    "messages": turns}  # fmt: skip
    return json.dumps(
        {"format": "chatsite.export", "version": 1, "conversations": [conversation]}
    ).encode()


def timed_send(client: httpx.Client, conversation_id: int) -> float:
    """Seconds from POSTing a message to the reply's start event; the rest is read too."""
    started = time.monotonic()
    body = {"content": "hello"}
    with client.stream("POST", f"/api/conversations/{conversation_id}/messages", json=body) as r:
        waited = None
        for line in r.iter_lines():
            if waited is None and line.startswith("event: start"):
                waited = time.monotonic() - started
    if waited is None:
        raise SystemExit(f"a send failed: HTTP {r.status_code}")
    return waited


def summary(label: str, waits: list[float]) -> str:
    ordered = sorted(waits)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"{label}: {len(waits)} sends, wait p50 {statistics.median(ordered) * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--sends", type=int, default=20, help="baseline sends")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        env = environment(workdir)
        manage(env, "migrate", "-v0")
        alice_key = manage(env, "create_api_key", "alice", "--create-user")
        bob_key = manage(env, "create_api_key", "bob", "--create-user")
        server, url = start_server(env, workdir)
        try:
            run(url, alice_key, bob_key, args)
        finally:
            server.terminate()
            server.wait(15)


def run(url: str, alice_key: str, bob_key: str, args) -> None:
    bob = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {bob_key}"}, timeout=60)
    alice = httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {alice_key}"}, timeout=600
    )
    conversation = bob.post("/api/conversations", json={}).json()["id"]
    baseline = [timed_send(bob, conversation) for _ in range(args.sends)]
    print(summary("baseline", baseline))

    body = history(args.messages)
    outcome = {}

    def importer():
        started = time.monotonic()
        response = alice.post("/api/import", content=body)
        outcome["seconds"] = time.monotonic() - started
        outcome["status"] = response.status_code

    thread = threading.Thread(target=importer)
    thread.start()
    during = []
    while thread.is_alive():
        during.append(timed_send(bob, conversation))
    thread.join()
    print(
        f"import of {args.messages} messages ({len(body) / 1e6:.1f} MB): "
        f"HTTP {outcome['status']} in {outcome['seconds']:.2f} s"
    )
    print(summary("during the import", during))


if __name__ == "__main__":
    main()
