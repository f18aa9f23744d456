"""What hostile requests cost the server, and whether anyone else notices.

    python bench/hostile_requests.py [--rounds 5]

Spawns chatsite (fake model, fresh SQLite) with uvicorn, then, as an ordinary user,
sends: 30,000 one-letter messages to /v1/chat/completions, a chat at the message cap
(1,000 messages, accepted and answered), 100,000 levels of nested JSON, and an
announced 2 GB body. For each it prints the status, the wall time and the server's
CPU seconds (its worker processes', which parse large bodies, included). Meanwhile
another user asks for small completions in a loop: their latency is printed alone
(before) and while the hostile requests run.
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
from server_processes import server_cpu
from stream_load import chatsite_env, free_port, manage, serve, server_command

THIRTY_THOUSAND = [{"role": "user", "content": "a"} for _ in range(30_000)]
AT_THE_CAP = [{"role": ("assistant", "user")[i % 2], "content": "a b c"} for i in range(1000)]
SMALL = [{"role": "user", "content": "hi"}]


def hostile_requests(base: str) -> dict[str, callable]:
    """Each hostile request as a function of a client; bodies are encoded once, up front."""

    def post(path: str, body: bytes):
        return lambda client: client.post(path, content=body).status_code

    def two_gb(client):
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            size = 2 * 1024**3
            head = f"POST /api/import HTTP/1.1\r\nHost: {host}\r\nContent-Length: {size}\r\n\r\n"
            sock.sendall(head.encode())
            return int(sock.recv(4096).split(b" ", 2)[1])

    def chat(messages) -> bytes:
        return json.dumps({"model": "fake", "messages": messages}).encode()

    return {
        "30,000 messages to /v1": post("/v1/chat/completions", chat(THIRTY_THOUSAND)),
        "1,000 messages to /v1 (the cap)": post("/v1/chat/completions", chat(AT_THE_CAP)),
        "100,000 levels of nesting": post("/api/conversations", b"[" * 100_000 + b"]" * 100_000),
        "an announced 2 GB body": two_gb,
    }


def attack(base: str, key: str, pid: int, rounds: int, results, only: str) -> None:
    """Mallory's side, in a process of its own so that the client's work never slows Alice's."""
    costs: dict[str, list] = {}
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    with httpx.Client(base_url=base, timeout=60, headers=headers) as client:
        for name, send in hostile_requests(base).items():
            if name != only:
                continue
            for _ in range(rounds):
                cpu, started = server_cpu(pid), time.monotonic()
                status = send(client)
                wall = time.monotonic() - started
                costs.setdefault(name, []).append((status, wall, server_cpu(pid) - cpu))
    results.put(costs)


def run(process: multiprocessing.Process) -> None:
    process.start()
    process.join()


def victim_loop(client: httpx.Client, stop: threading.Event, latencies: list[float]) -> None:
    while not stop.is_set():
        started = time.monotonic()
        response = client.post("/v1/chat/completions", json={"model": "fake", "messages": SMALL})
        response.raise_for_status()
        latencies.append(time.monotonic() - started)


def victim_latencies(client: httpx.Client, seconds: float, during=None) -> list[float]:
    latencies: list[float] = []
    stop = threading.Event()
    thread = threading.Thread(target=victim_loop, args=(client, stop, latencies))
    thread.start()
    if during is None:
        time.sleep(seconds)
    else:
        during()
    stop.set()
    thread.join()
    return latencies


def describe(latencies: list[float]) -> str:
    ms = sorted(x * 1000 for x in latencies)
    return f"{len(ms)} calls, p50 {statistics.median(ms):.0f} ms, max {ms[-1]:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="times each hostile request is sent")
    args = parser.parse_args()
    settings = argparse.Namespace(server_env=[], tokens_per_second=200, tokens=20)
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        env = chatsite_env(settings, workdir)
        manage(env, "migrate", "-v0")
        keys = [
            manage(env, "create_api_key", name, "--create-user").split()[-1]
            for name in ("mallory", "alice")
        ]
        port = free_port()
        command = server_command("uvicorn", port, "chatsite.asgi:application")
        with serve("chatsite", command, env, port, workdir) as target:
            base = f"http://127.0.0.1:{port}"
            alice = httpx.Client(
                base_url=base, timeout=60, headers={"Authorization": f"Bearer {keys[1]}"}
            )
            victim_latencies(alice, 2)  # warm up
            print(f"alice alone:           {describe(victim_latencies(alice, 5))}")
            for name in hostile_requests(base):
                results = multiprocessing.Queue()
                mallory = multiprocessing.Process(
                    target=attack, args=(base, keys[0], target.pid, args.rounds, results, name)
                )
                during = victim_latencies(alice, 0, during=functools.partial(run, mallory))
                runs = results.get(timeout=10)[name]
                statuses = sorted({status for status, _, _ in runs})
                wall = max(w for _, w, _ in runs) * 1000
                cpu = max(c for _, _, c in runs) * 1000
                print(
                    f"{name}: status {statuses}, max wall {wall:.0f} ms, "
                    f"max server CPU {cpu:.0f} ms; alice meanwhile: {describe(during)}"
                )
            alice.close()


if __name__ == "__main__":
    main()
