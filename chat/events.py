"""The events of a reply: built here once, rendered for SSE and the websocket alike."""

from __future__ import annotations

import json
from dataclasses import dataclass

START = "start"
DELTA = "delta"
DONE = "done"
ERROR = "error"
SNAPSHOT = "snapshot"
TERMINAL = frozenset({DONE, ERROR})

KEEPALIVE = b": keepalive\n\n"
# One encoder for every frame: json.dumps with options builds a new one for each call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Event:
    message_id: int
    seq: int
    name: str
    data: dict

    @property
    def id(self) -> str:
        return f"{self.message_id}:{self.seq}"

    @property
    def is_terminal(self) -> bool:
        return self.name in TERMINAL

    def sse(self) -> bytes:
        """The event as one Server-Sent Events frame."""
        payload = _ENCODER.encode(self.data)
        return f"id: {self.id}\nevent: {self.name}\ndata: {payload}\n\n".encode()

    def ws(self) -> dict:
        """The event as a websocket message: the SSE fields plus `type` and `id`."""
        return {"type": self.name, "id": self.id, **self.data}


def start_data(
    message_id: int,
    user_message_id: int,
    conversation_id: int,
    model: str,
    loading_model: bool = False,
) -> dict:
    """`loading_model: true` only while the model is still loading: the reply waits for it."""
    data = {
        "message_id": message_id,
        "user_message_id": user_message_id,
        "conversation_id": conversation_id,
        "model": model,
    }
    if loading_model:
        data["loading_model"] = True
    return data


def delta_data(text: str) -> dict:
    return {"text": text}


def snapshot_data(message_id: int, text: str) -> dict:
    return {"message_id": message_id, "text": text}


def done_data(message_id, status, ttft_ms, output_tokens, duration_ms, prompt_tokens=None):
    """`prompt_tokens` only where the model counted the prompt (the usage of `/v1` reports it)."""
    data = {
        "message_id": message_id,
        "status": status,
        "ttft_ms": ttft_ms,
        "output_tokens": output_tokens,
        "duration_ms": duration_ms,
    }
    if prompt_tokens is not None:
        data["prompt_tokens"] = prompt_tokens
    return data


def error_data(message_id: int, code: str, message: str) -> dict:
    return {"message_id": message_id, "code": code, "message": message}


def parse_event_id(raw: str | None, message_id: int) -> int:
    """The seq a client last saw for this message, or -1 to replay from the start.

    Accepts `<message_id>:<seq>` or a bare seq; anything else (or an id for another
    message) means "from the start", which is always safe: the client gets it all.
    """
    if not raw:
        return -1
    head, _, tail = raw.strip().rpartition(":")
    if head and head != str(message_id):
        return -1
    try:
        return max(int(tail), -1)
    except ValueError:
        return -1
