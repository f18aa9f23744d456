"""The upstream's side of a proxied stream alone: N concurrent `OpenAIProvider.stream` calls.

    python bench/upstream_read.py --streams 300

It starts bench/fake_upstream.py (as proxy_load.py does) and, in this process, on chatsite's
settings, reads --streams streams from it at once through the provider (the `openai` SDK
sends each request, chat/providers/transport.py carries it), --rounds times after one
untimed stream, and prints this process's CPU per stream for each round: the part of
proxy_load.py's chatsite CPU that reads the upstream, without Django's request, the
database, the event log and the /v1 frames.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import stream_load
from fake_upstream import MODEL

ROOT = Path(__file__).resolve().parent.parent


def provider_for_upstream(port: int):
    """chatsite's OpenAI-compatible provider, configured for the fake upstream on `port`."""
    sys.path.insert(0, str(ROOT))  # this checkout's chatsite, not an installed one
    os.environ.update(
        DJANGO_SETTINGS_MODULE="chatsite.settings",
        OPENAI_BASE_URL=f"http://127.0.0.1:{port}/v1",
        OPENAI_API_KEY="sk-bench",
        OPENAI_MODELS=MODEL,
    )
    os.environ.setdefault("SECRET_KEY", "bench-only")
    import django

    django.setup()
    from chat.providers.openai_compat import OpenAIProvider

    return OpenAIProvider()


async def read_streams(provider, args: argparse.Namespace) -> None:
    from chat.providers.base import Generation

    async def one() -> int:
        generation = Generation(MODEL, [{"role": "user", "content": stream_load.PROMPT}])
        return sum([1 async for _ in provider.stream(generation)])

    await one()  # first uses: imports, the client, a connection
    for number in range(args.rounds):
        cpu, wall = time.process_time(), time.monotonic()
        deltas = await asyncio.gather(*(one() for _ in range(args.streams)))
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        print(
            f"round {number + 1}: {args.streams} streams, {sum(deltas)} deltas, "
            f"wall {wall:.2f} s, CPU per stream {1000 * cpu / args.streams:.2f} ms",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=300, help="concurrent streams (300)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (3)")
    parser.add_argument("--tokens-per-second", type=float, default=20, help="the pace (20)")
    parser.add_argument("--tokens", type=int, default=40, help="words per reply (40)")
    args = parser.parse_args()
    stream_load.raise_fd_limit(args.streams)
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    with (
        tempfile.TemporaryDirectory(prefix="chatsite-upstream-") as workdir,
        stream_load.spawn_paced("upstream", "fake_upstream.py", args, Path(workdir)) as upstream,
    ):
        asyncio.run(read_streams(provider_for_upstream(upstream.port), args))
    print("load average after:  {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
