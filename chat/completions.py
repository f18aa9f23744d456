"""OpenAI's chat-completions wire format: the request read, the reply's events written out.

What `/v1/` speaks, kept apart from the views: a request body becomes the arguments of
`replies.start_completion`, and a run's events become `chat.completion.chunk` frames or
one `chat.completion`, the shapes the official `openai` client parses.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from chat import events
from chat.errors import BadRequest, ChatError, NotFound
from chat.events import KEEPALIVE, Event
from chat.providers import Generation, provider_for
from chat.replies import capped_max_tokens

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
MAX_STOP_SEQUENCES = 4
DONE_FRAME = b"data: [DONE]\n\n"


class InvalidParam(BadRequest):
    """A request parameter OpenAI's API would refuse; `param` names it."""

    code = "invalid_value"

    def __init__(self, param: str, message: str, code: str | None = None):
        super().__init__(message, code=code)
        self.param = param


class ModelNotFound(NotFound):
    code = "model_not_found"


@dataclass
class CompletionRequest:
    model: str
    messages: list[dict]
    stream: bool = False
    include_usage: bool = False
    options: dict = field(default_factory=dict)


def read_request(body: dict) -> CompletionRequest:
    """The body of `POST /v1/chat/completions`, checked; InvalidParam names what is wrong."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidParam(
            "model", "You must provide a model parameter.", code="missing_required_parameter"
        )
    if provider_for(model) is None:
        raise ModelNotFound(f"The model `{model}` does not exist or you do not have access to it.")
    if body.get("n") not in (None, 1):
        raise InvalidParam("n", "Only one choice (n=1) is supported.")
    if body.get("tools") or body.get("functions"):
        raise InvalidParam("tools", "Tools and functions are not supported.")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise InvalidParam("stream", "'stream' must be true or false.")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise InvalidParam("stream_options", "'stream_options' must be an object.")
    return CompletionRequest(
        model=model,
        messages=_messages(body.get("messages")),
        stream=stream,
        include_usage=stream_options.get("include_usage") is True,
        options=_options(body),
    )


def _messages(raw) -> list[dict]:
    if not isinstance(raw, list) or not raw:
        raise InvalidParam("messages", "'messages' must be a non-empty list.")
    return [_message(item, f"messages[{index}]") for index, item in enumerate(raw)]


def _message(item, param: str) -> dict:
    if not isinstance(item, dict) or item.get("role") not in ROLES:
        roles = ", ".join(ROLES)
        raise InvalidParam(f"{param}.role", f"Each message needs a role: one of {roles}.")
    content = item.get("content")
    if isinstance(content, list):
        # Content parts: only text ones can be shown to a model here.
        if not all(isinstance(p, dict) and p.get("type") == "text" for p in content):
            raise InvalidParam(f"{param}.content", "Only text content parts are supported.")
        content = "".join(str(part.get("text", "")) for part in content)
    if not isinstance(content, str):
        raise InvalidParam(f"{param}.content", "Message content must be a string.")
    return {"role": ROLES[item["role"]], "content": content}


def _options(body: dict) -> dict:
    """What `Generation` takes from the request: max_tokens, temperature, stop_sequences."""
    options = {}
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidParam("max_tokens", "'max_tokens' must be a whole number of at least 1.")
        options["max_tokens"] = capped_max_tokens(limit)
    temperature = body.get("temperature")
    if temperature is not None:
        if isinstance(temperature, bool) or not isinstance(temperature, int | float):
            raise InvalidParam("temperature", "'temperature' must be a number.")
        if not 0 <= temperature <= 2:
            raise InvalidParam("temperature", "'temperature' must be between 0 and 2.")
        options["temperature"] = float(temperature)
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
            raise InvalidParam("stop", "'stop' must be a string or a list of strings.")
        if len(stops) > MAX_STOP_SEQUENCES:
            raise InvalidParam("stop", f"At most {MAX_STOP_SEQUENCES} stop sequences.")
        options["stop_sequences"] = stops
    return options


# Our limits' codes as OpenAI names its 429s: (type, code).
LIMIT_CODES = {
    "too_many_replies": ("requests", "rate_limit_exceeded"),
    "rate_limited": ("requests", "rate_limit_exceeded"),
    "quota_exceeded": ("insufficient_quota", "insufficient_quota"),
}


def error_body(error: ChatError) -> dict:
    """OpenAI's error shape: {"error": {"message", "type", "param", "code"}}."""
    kind = "server_error" if error.status >= 500 else "invalid_request_error"
    kind, code = LIMIT_CODES.get(error.code, (kind, error.code))
    param = getattr(error, "param", None)
    return {"error": {"message": error.message, "type": kind, "param": param, "code": code}}


def model_list(models: list[dict]) -> dict:
    """`GET /v1/models`: the models offered, in OpenAI's list shape."""
    return {"object": "list", "data": [model_object(m) for m in models]}


def model_object(model: dict) -> dict:
    return {"id": model["id"], "object": "model", "created": 0, "owned_by": model["provider"]}


class GenerationFailed(ChatError):
    """The reply failed after it started; it is kept, failed, in the history."""

    status = 500


@dataclass
class Completion:
    """One completion being answered: its id, the request, and how its events read."""

    message_id: int
    request: CompletionRequest
    generation: Generation  # the run's: its provider reports the prompt's size on it
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def id(self) -> str:
        return f"chatcmpl-{self.message_id}"

    def _head(self, kind: str) -> dict:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.request.model}

    def chunk(self, delta: dict, finish_reason: str | None = None) -> dict:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        body = {**self._head("chat.completion.chunk"), "choices": [choice]}
        if self.request.include_usage:
            body["usage"] = None
        return body

    def delta_frame(self, text: str) -> bytes:
        """The frame of one text delta: `_frame(self.chunk({"content": text}))`, cheaper."""
        head, tail = self._delta_frame_around
        return head + json.dumps(text, ensure_ascii=False).encode() + tail

    @functools.cached_property
    def _delta_frame_around(self) -> tuple[bytes, bytes]:
        # Everything but the text is the same in every delta of a stream: render it once.
        # The text comes after the model's name, the only other string that could hold "?".
        head, _, tail = _frame(self.chunk({"content": "?"})).rpartition(b'"?"')
        return head, tail

    def finish_reason(self, done: dict) -> str:
        limit = capped_max_tokens(self.request.options.get("max_tokens"))
        return "length" if (done.get("output_tokens") or 0) >= limit else "stop"

    async def usage(self, done: dict) -> dict:
        # As the model counted it, where it says: its `done` carries the count (from
        # whichever process wrote the reply).
        prompt = done.get("prompt_tokens", self.generation.prompt_tokens)
        if prompt is None:
            prompt = await asyncio.to_thread(_prompt_tokens, self.request)
        completion = done.get("output_tokens") or 0
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    async def frames(self, followed: AsyncIterator[Event | None]) -> AsyncIterator[bytes]:
        """The run's events as `chat.completion.chunk` frames, then `data: [DONE]`."""
        async with contextlib.aclosing(followed):
            async for event in followed:
                for frame in await self._frames_for(event):
                    yield frame
        yield DONE_FRAME

    async def _frames_for(self, event: Event | None) -> list[bytes]:
        if event is None:
            return [KEEPALIVE]
        if event.name == events.START:
            return [_frame(self.chunk({"role": "assistant", "content": ""}))]
        if event.name == events.DELTA:
            return [self.delta_frame(event.data["text"])]
        if event.name == events.ERROR:
            failed = GenerationFailed(event.data["message"], code=event.data["code"])
            return [_frame(error_body(failed))]
        frames = [_frame(self.chunk({}, self.finish_reason(event.data)))]
        if self.request.include_usage:
            usage = {**self._head("chat.completion.chunk"), "choices": []}
            frames.append(_frame({**usage, "usage": await self.usage(event.data)}))
        return frames

    async def result(self, followed: AsyncIterator[Event | None]) -> dict:
        """The whole reply as one `chat.completion`; GenerationFailed if it failed."""
        parts: list[str] = []
        last = None
        async with contextlib.aclosing(followed):
            async for event in followed:
                if event is None:
                    continue  # a keepalive tick: nothing to send on a plain response
                last = event
                if event.name == events.DELTA:
                    parts.append(event.data["text"])
        if last is None or not last.is_terminal:
            raise GenerationFailed("The reply ended unexpectedly.", code="interrupted")
        if last.name == events.ERROR:
            raise GenerationFailed(last.data["message"], code=last.data["code"])
        message = {"role": "assistant", "content": "".join(parts), "refusal": None}
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": self.finish_reason(last.data),
        }
        return {
            **self._head("chat.completion"),
            "choices": [choice],
            "usage": await self.usage(last.data),
        }


def _prompt_tokens(request: CompletionRequest) -> int:
    """The prompt's size as the model's provider estimates it, for one that did not report it."""
    provider = provider_for(request.model)
    return provider.count_tokens(request.model, request.messages) if provider else 0


def _frame(body: dict) -> bytes:
    return f"data: {json.dumps(body, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()
