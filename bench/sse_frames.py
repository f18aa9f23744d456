"""The server CPU of a delta on its way from a reply's event log to the ASGI server.

    python bench/sse_frames.py [--streams 1000] [--deltas 40]

Each stream follows its reply in the memory event log (chat.runs.follow), as
text/event-stream (chat.views.stream), sent by the API handler's send_response through
the body-limit middleware to an ASGI `send` that does nothing; the writer appends one
delta to every reply per turn of the loop. Prints the CPU per delta and per stream,
appends included. Left out: the request, the model, the database, and the server's own
HTTP framing and socket writes. A load test (stream_load.py) on a busy machine cannot
see costs this small; this can.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    os.environ.setdefault("SECRET_KEY", "bench")
    import django

    django.setup()


async def measure(streams: int, deltas: int) -> float:
    from chat import events
    from chat.bodylimit import BodyLimitMiddleware
    from chat.events import Event
    from chat.handlers import ApiHandler
    from chat.runs.eventlog.memory import MemoryEventLog
    from chat.runs.follow import follow
    from chat.views.stream import sse_response

    log, handler = MemoryEventLog(), ApiHandler()
    scope = {"type": "http", "path": "/api/conversations/1/messages", "headers": []}

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        pass

    async def stream(mid: int):
        response = sse_response(await follow(log, mid, -1, lambda: True))

        async def app(scope, receive, send):
            await handler.send_response(response, send)

        await BodyLimitMiddleware(app)(scope, receive, send)

    for mid in range(streams):
        log.append(Event(mid, 0, events.START, events.start_data(mid, mid, mid, "fake")))
        await log.lease(mid, 600)
    tasks = [asyncio.create_task(stream(mid)) for mid in range(streams)]
    await asyncio.sleep(0.1)  # every stream waits for its first delta
    started = time.process_time()
    for seq in range(1, deltas + 1):
        for mid in range(streams):
            log.append(Event(mid, seq, events.DELTA, events.delta_data(" word")))
        await asyncio.sleep(0)
    for mid in range(streams):
        done = events.done_data(mid, "complete", 1, deltas, 2)
        log.append(Event(mid, deltas + 1, events.DONE, done))
    await asyncio.gather(*tasks)
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--deltas", type=int, default=40)
    args = parser.parse_args()
    setup()
    cpu = asyncio.run(measure(args.streams, args.deltas))
    per_delta = cpu / (args.streams * args.deltas) * 1e6
    per_stream = cpu / args.streams * 1000
    print(f"{per_delta:.1f} us per delta, {per_stream:.2f} ms per stream of {args.deltas}")


if __name__ == "__main__":
    main()
