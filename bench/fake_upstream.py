"""A fast fake OpenAI-compatible upstream: the other end of proxy_load.py's proxied streams.

    python bench/fake_upstream.py --port 8002 --tokens-per-second 20 --tokens 40

`POST /v1/chat/completions` with `"stream": true` answers `chat.completion.chunk` events as
OpenAI sends them (a role chunk, one chunk per word of the fake model's sentence at the
given pace, a finish chunk, a usage chunk when `stream_options.include_usage` asks for
it, then `data: [DONE]`); without `stream` it answers one `chat.completion`. It honours
`max_tokens`. `GET /v1/models` lists `bench-model`.

It is plain asyncio with a minimal HTTP/1.1 server (keep-alive, Content-Length request
bodies, chunked responses) rather than uvicorn: the bench machine has two cores shared by
the client, chatsite and this upstream, so the upstream must cost next to nothing.
tests/openai_upstream.py is the full-featured one the tests use (errors, drops, delays).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time

from baseline_server import fake_tokens

MODEL = "bench-model"


def http_response(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


def chunked(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def sse(data: dict) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


class Completion:
    """One requested completion: its words, and its chunks as OpenAI writes them."""

    def __init__(self, upstream: FakeUpstream, body: dict):
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        self.words = fake_tokens(upstream.tokens)[:limit]
        self.finish = "length" if len(self.words) < upstream.tokens else "stop"
        self.with_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        self.usage = {
            "prompt_tokens": prompt,
            "completion_tokens": len(self.words),
            "total_tokens": prompt + len(self.words),
        }
        self.head = {
            "id": f"chatcmpl-{next(upstream.ids)}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", MODEL),
            "system_fingerprint": None,
        }

    def chunk(self, delta: dict, finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        usage = {"usage": None} if self.with_usage else {}
        return sse({**self.head, "choices": [choice], **usage})

    def whole(self) -> bytes:
        message = {"role": "assistant", "content": "".join(self.words), "refusal": None}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": self.finish}
        head = {**self.head, "object": "chat.completion"}
        return json.dumps({**head, "choices": [choice], "usage": self.usage}).encode()


class FakeUpstream:
    def __init__(self, tokens_per_second: float, tokens: int):
        self.pause = 1 / tokens_per_second
        self.tokens = tokens
        self.ids = iter(range(1, 1 << 62))

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection's requests, one after another (keep-alive)."""
        try:
            while await self._one(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away: a stopped reply, or the end of a keep-alive
        finally:
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        method, path, _ = head[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
        length = int(headers.get("content-length") or 0)
        body = json.loads(await reader.readexactly(length)) if length else {}
        if method == "POST" and path.endswith("/chat/completions"):
            await self._complete(Completion(self, body), body.get("stream"), writer)
        elif method == "GET" and path.endswith("/models"):
            model = {"id": MODEL, "object": "model", "created": 0, "owned_by": "bench"}
            listing = json.dumps({"object": "list", "data": [model]}).encode()
            writer.write(http_response("200 OK", listing))
        else:
            writer.write(http_response("404 Not Found", b'{"error": {"message": "no such path"}}'))
        await writer.drain()
        return headers.get("connection", "").lower() != "close"

    async def _complete(self, completion: Completion, stream, writer) -> None:
        if not stream:
            writer.write(http_response("200 OK", completion.whole()))
            return
        head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        writer.write(f"{head}Transfer-Encoding: chunked\r\n\r\n".encode())
        writer.write(chunked(completion.chunk({"role": "assistant", "content": ""})))
        for index, word in enumerate(completion.words):
            if index:
                await asyncio.sleep(self.pause)
            writer.write(chunked(completion.chunk({"content": word})))
            await writer.drain()  # raises once the client has gone: stop writing then
        ending = completion.chunk({}, completion.finish)
        if completion.with_usage:
            ending += sse({**completion.head, "choices": [], "usage": completion.usage})
        writer.write(chunked(ending + b"data: [DONE]\n\n") + b"0\r\n\r\n")


async def serve(port: int, tokens_per_second: float, tokens: int) -> None:
    upstream = FakeUpstream(tokens_per_second, tokens)
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--tokens-per-second", type=float, default=20)
    parser.add_argument("--tokens", type=int, default=40)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.tokens_per_second, args.tokens))


if __name__ == "__main__":
    main()
