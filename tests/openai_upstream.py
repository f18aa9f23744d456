"""A small OpenAI-compatible chat server for tests, served by uvicorn on 127.0.0.1.

    with OpenAIUpstream(tokens=["Hel", "lo"]) as upstream:
        client = AsyncOpenAI(base_url=upstream.url, api_key="sk-test")

It speaks the real wire format: `chat.completion.chunk` server-sent events ending in
`data: [DONE]`, `chat.completion` objects, OpenAI-style error bodies, `GET /v1/models`.
Knobs are plain attributes, read on each request, so a test may change them at any time.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route


@dataclass
class RecordedRequest:
    """One request as the server saw it; header names are lower-case."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict | None
    client_port: int | None = None  # the same for requests on one kept-alive connection


class MidStreamDrop(Exception):
    """Raised inside the response to cut the connection without finishing the body."""


class OpenAIUpstream:
    """An OpenAI-compatible server on a free port; `url` is its base URL, ending in /v1."""

    def __init__(self, tokens: list[str] | None = None, models: list[str] | None = None):
        self.tokens = list(tokens or ["Hello", ",", " world", "!"])
        self.models = list(models or ["test-model"])
        self.response_delay = 0.0  # seconds before the response headers
        self.chunk_delay = 0.0  # seconds before each content chunk
        self.usage: dict | None = None  # reported instead of the computed usage
        self.send_usage = True  # False: ignore stream_options, as older servers do
        self.fail_status: int | None = None
        self.fail_message = "Something went wrong."
        self.fail_after: int | None = None  # content chunks sent before failing mid-stream
        self.fail_by_dropping = False  # mid-stream: cut the connection, not an error event
        self.requests: list[RecordedRequest] = []
        self.disconnected = threading.Event()  # the client left before the stream ended
        self.completed = threading.Event()  # a stream was sent through to [DONE]
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL to give an OpenAI client."""
        return f"http://127.0.0.1:{self.port}/v1"

    def fail_with(self, status: int, message: str = "Something went wrong.") -> None:
        """Answer every request with this HTTP status and an OpenAI-style error body."""
        self.fail_status, self.fail_message = status, message

    def fail_mid_stream(self, after: int, drop: bool = False, message: str = "Boom.") -> None:
        """Fail after `after` content chunks: an error event, or a cut connection if `drop`."""
        self.fail_after, self.fail_by_dropping, self.fail_message = after, drop, message

    def start(self) -> OpenAIUpstream:
        """Serve in a background thread; returns once the port accepts connections."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app(), log_level="warning", lifespan="off", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the test upstream did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Shut the server down and wait for its thread."""
        if self._server is not None and self._thread is not None:
            # force_exit: do not wait for a slow test response to finish.
            self._server.should_exit = self._server.force_exit = True
            self._thread.join(timeout=5)

    def __enter__(self) -> OpenAIUpstream:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )

    async def _record(self, request: Request) -> dict | None:
        raw = await request.body()
        body = json.loads(raw) if raw else None
        headers = {name.lower(): value for name, value in request.headers.items()}
        port = request.client.port if request.client else None
        recorded = RecordedRequest(request.method, request.url.path, headers, body, port)
        self.requests.append(recorded)
        return body

    async def _models(self, request: Request):
        await self._record(request)
        if self.fail_status is not None:
            return self._error_response()
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "test"} for m in self.models]
        return JSONResponse({"object": "list", "data": data})

    async def _chat(self, request: Request):
        body = await self._record(request) or {}
        await asyncio.sleep(self.response_delay)
        if self.fail_status is not None:
            return self._error_response()
        if body.get("model") not in self.models:
            message = f"The model `{body.get('model')}` does not exist."
            return self._error_response(404, message, "invalid_request_error", "model_not_found")
        if not body.get("stream"):
            return JSONResponse(self._completion(body))
        headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
        return StreamingResponse(
            self._events(body), media_type="text/event-stream", headers=headers
        )

    def _error_response(self, status=None, message=None, kind="server_error", code=None):
        status, message = status or self.fail_status, message or self.fail_message
        error = {"message": message, "type": kind, "param": None, "code": code}
        return JSONResponse({"error": error}, status_code=status)

    def _reply(self, body: dict) -> tuple[list[str], str]:
        """The tokens to send, cut at max_tokens, and the finish reason."""
        limit = body.get("max_tokens")
        if limit is not None and limit < len(self.tokens):
            return self.tokens[:limit], "length"
        return list(self.tokens), "stop"

    def _usage(self, body: dict, completion_tokens: int) -> dict:
        if self.usage is not None:
            return dict(self.usage)
        prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        total = prompt + completion_tokens
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion_tokens,
            "total_tokens": total,
        }

    def _completion(self, body: dict) -> dict:
        tokens, finish = self._reply(body)
        message = {"role": "assistant", "content": "".join(tokens), "refusal": None}
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            ],
            "usage": self._usage(body, len(tokens)),
        }

    async def _events(self, body: dict):
        """The SSE body; marks `disconnected` if the client goes away before the end."""
        include_usage = self.send_usage and (body.get("stream_options") or {}).get("include_usage")
        chunk = ChunkMaker(body["model"], bool(include_usage))
        tokens, finish = self._reply(body)
        ended = False
        try:
            yield chunk({"role": "assistant", "content": "", "refusal": None})
            for index, token in enumerate(tokens):
                if index == self.fail_after:
                    ended = True
                    if self.fail_by_dropping:
                        raise MidStreamDrop("the test upstream cut the connection")
                    error = {"message": self.fail_message, "type": "server_error", "code": None}
                    yield sse({"error": error})
                    return
                await asyncio.sleep(self.chunk_delay)
                yield chunk({"content": token})
            yield chunk({}, finish)
            if include_usage:
                yield chunk.usage_chunk(self._usage(body, len(tokens)))
            yield b"data: [DONE]\n\n"
            ended = True
            self.completed.set()
        finally:
            # Starlette cancels (or closes) this generator when the client disconnects.
            if not ended:
                self.disconnected.set()


class ChunkMaker:
    """Builds the `chat.completion.chunk` events of one streamed completion."""

    def __init__(self, model: str, with_usage: bool):
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.model = model
        # With include_usage, OpenAI sends `"usage": null` on every chunk but the last.
        self.with_usage = with_usage

    def _base(self, choices: list) -> dict:
        data = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": choices,
        }
        if self.with_usage:
            data["usage"] = None
        return data

    def __call__(self, delta: dict, finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return sse(self._base([choice]))

    def usage_chunk(self, usage: dict) -> bytes:
        """The final chunk: no choices, only usage."""
        return sse({**self._base([]), "usage": usage})


def sse(data: dict) -> bytes:
    """One server-sent event carrying `data` as JSON."""
    return f"data: {json.dumps(data)}\n\n".encode()
