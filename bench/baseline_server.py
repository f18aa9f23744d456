"""A bare streaming endpoint: the yardstick that stream_load.py compares chatsite against.

It speaks the same small slice of chatsite's API (create a conversation, send a message
and receive the reply as Server-Sent Events, read the conversation back) and writes the
fake model's deterministic text at the same pace, but with no authentication, no
database and no event log: one Starlette `StreamingResponse` per request, served by
uvicorn. Whatever chatsite costs beyond these numbers is the price of its features.

    python bench/baseline_server.py --port 8001 --tokens-per-second 20 --tokens 40
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

# The fake model's text, as chat/providers/fake.py writes it (and as the brief specifies).
SENTENCE = (
    "The quick brown fox jumps over the lazy dog while streams of tokens flow "
    "from model to browser, one small delta at a time, never behind a spinner."
)
WORDS = SENTENCE.split()


def fake_tokens(count: int) -> list[str]:
    """The fake model's tokens: the sentence's words, cycled, joined by single spaces."""
    return [("" if i == 0 else " ") + WORDS[i % len(WORDS)] for i in range(count)]


def sse(message_id: int, seq: int, name: str, data: dict) -> bytes:
    payload = json.dumps(data, separators=(",", ":"))
    return f"id: {message_id}:{seq}\nevent: {name}\ndata: {payload}\n\n".encode()


class Baseline:
    """In-memory conversations and the streaming reply, at a fixed fake pace."""

    def __init__(self, tokens_per_second: float, tokens: int):
        self.pause = 1 / tokens_per_second
        self.tokens = tokens
        self.ids = itertools.count(1)
        self.replies: dict[int, str] = {}

    async def create(self, request: Request) -> JSONResponse:
        return JSONResponse({"id": next(self.ids)}, status_code=201)

    async def show(self, request: Request) -> JSONResponse:
        cid = request.path_params["cid"]
        content = self.replies.get(cid, "")
        reply = {"role": "assistant", "content": content, "status": "complete"}
        return JSONResponse({"id": cid, "messages": [reply]})

    async def send(self, request: Request) -> StreamingResponse:
        await request.body()
        cid = request.path_params["cid"]
        stream = self.reply(cid, next(self.ids), next(self.ids))
        return StreamingResponse(stream, media_type="text/event-stream")

    async def reply(self, cid: int, user_mid: int, mid: int):
        started = time.monotonic()
        start = {"message_id": mid, "user_message_id": user_mid, "conversation_id": cid}
        yield sse(mid, 0, "start", {**start, "model": "fake"})
        parts = []
        for index, token in enumerate(fake_tokens(self.tokens)):
            if index:
                await asyncio.sleep(self.pause)
            parts.append(token)
            # "emitted" lets the client measure the true emission-to-receipt delay here.
            yield sse(mid, index + 1, "delta", {"text": token, "emitted": time.monotonic()})
        self.replies[cid] = "".join(parts)
        done = {"message_id": mid, "status": "complete", "output_tokens": len(parts)}
        done["duration_ms"] = round((time.monotonic() - started) * 1000)
        yield sse(mid, len(parts) + 1, "done", done)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/conversations", self.create, methods=["POST"]),
                Route("/api/conversations/{cid:int}", self.show, methods=["GET"]),
                Route("/api/conversations/{cid:int}/messages", self.send, methods=["POST"]),
            ]
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--tokens-per-second", type=float, default=20)
    parser.add_argument("--tokens", type=int, default=40)
    args = parser.parse_args()
    app = Baseline(args.tokens_per_second, args.tokens).app()
    uvicorn.run(
        app, host="127.0.0.1", port=args.port, lifespan="off", access_log=False, log_level="warning"
    )


if __name__ == "__main__":
    main()
