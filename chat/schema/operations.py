"""Every operation of /api/ and /v1/, the one list the OpenAPI document is built from.

To add an endpoint, add an `Operation` here: its method and path (OpenAPI's `{name}`
for path parameters: integers, except where `path_params` says), what it answers,
its body schema (a function in chat.schema.bodies, which the view validates with) and
the error statuses it can give besides the ones every operation of its kind shares.
`tests/test_openapi.py` checks that the list and the URLconf agree, and schemathesis
drives every operation listed here against a live server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from chat.exports import CONTENT_TYPES

from . import bodies
from . import responses as r

JSON = "application/json"
EVENTS = "text/event-stream"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    answers: dict[int, dict[str, dict]]  # status -> media type -> schema
    body: Callable[[], dict] | None = None
    errors: tuple[int, ...] = ()
    query: dict[str, dict] = field(default_factory=dict)
    headers: dict[str, dict] = field(default_factory=dict)
    path_params: dict[str, dict] = field(default_factory=dict)
    body_types: dict[str, dict] | None = None  # a body that is not a JSON object
    auth: str = "api"  # "api": session (+CSRF) or Bearer key; "v1": Bearer only; "none"


def ok(schema: dict, status: int = 200, media: str = JSON) -> dict[int, dict[str, dict]]:
    return {status: {media: schema}}


FORMAT = {"type": "string", "enum": list(CONTENT_TYPES), "default": "json"}
DOWNLOADS = {
    200: {
        media.split(";")[0]: {"type": "object"} if media == JSON else {}
        for media in CONTENT_TYPES.values()
    }
}
IMPORT_BODY = {
    JSON: {"description": "A chatsite export, or ChatGPT's conversations.json."},
    "application/zip": {"type": "string", "format": "binary"},
    "multipart/form-data": {
        "type": "object",
        "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary"}},
    },
}

OPERATIONS = [
    Operation("GET", "/api/openapi.json", "This document.", ok(r.OPENAPI_DOCUMENT), auth="none"),
    Operation("GET", "/api/models", "The models offered.", ok(r.MODELS)),
    Operation(
        "GET",
        "/api/conversations",
        "The user's conversations, newest first; `q` searches titles and text.",
        ok(r.CONVERSATIONS),
        query={"q": {"type": "string"}},
    ),
    Operation(
        "POST",
        "/api/conversations",
        "Start a conversation.",
        ok(r.CONVERSATION, 201),
        body=bodies.conversation_fields,
    ),
    Operation(
        "GET",
        "/api/conversations/{conversation_id}",
        "A conversation with the messages of its current branch, root to leaf.",
        ok(r.CONVERSATION_WITH_MESSAGES),
        errors=(404,),
    ),
    Operation(
        "PATCH",
        "/api/conversations/{conversation_id}",
        "Rename it; change its persona, model or settings; switch branch.",
        ok(r.CONVERSATION_WITH_MESSAGES),
        body=bodies.conversation_fields,
        errors=(404,),
    ),
    Operation(
        "DELETE",
        "/api/conversations/{conversation_id}",
        "Delete it and its messages.",
        {204: {}},
        errors=(404,),
    ),
    Operation(
        "POST",
        "/api/conversations/{conversation_id}/messages",
        "Send a message; the answer is the reply's event stream.",
        ok(r.EVENT_STREAM, media=EVENTS),
        body=bodies.new_message,
        errors=(404, 409, 429, 503),
    ),
    Operation(
        "POST",
        "/api/messages/{message_id}/regenerate",
        "A new version of a reply, to the same question; the answer is its event stream.",
        ok(r.EVENT_STREAM, media=EVENTS),
        body=bodies.regenerate,
        errors=(404, 409, 503),
    ),
    Operation(
        "GET",
        "/api/messages/{message_id}/stream",
        "A reply's events after `Last-Event-ID` (or `last_event_id`), then live.",
        ok(r.EVENT_STREAM, media=EVENTS),
        query={"last_event_id": {"type": "string"}},
        headers={"Last-Event-ID": {"type": "string"}},
        errors=(404, 503),
    ),
    Operation(
        "POST",
        "/api/messages/{message_id}/stop",
        "Stop a reply; the text so far is kept.",
        ok(r.STOPPING, 202),
        errors=(404, 503),
    ),
    Operation(
        "POST",
        "/api/conversations/{conversation_id}/share",
        "A new read-only link, /s/<token>/, to a snapshot of the conversation as it is now.",
        ok(r.SHARED_LINK, 201),
        errors=(404,),
    ),
    Operation(
        "DELETE",
        "/api/conversations/{conversation_id}/share",
        "Revoke every link to the conversation: they answer 404 from then on.",
        {204: {}},
        errors=(404,),
    ),
    Operation(
        "GET",
        "/api/conversations/{conversation_id}/export",
        "A conversation as a download.",
        DOWNLOADS,
        query={"format": FORMAT},
        errors=(404,),
    ),
    Operation(
        "GET",
        "/api/export",
        "The whole account as a download.",
        DOWNLOADS,
        query={"format": FORMAT},
    ),
    Operation(
        "POST",
        "/api/import",
        "Import a history file: all of it, or on any error none.",
        ok(r.IMPORTED, 201),
        body_types=IMPORT_BODY,
    ),
    Operation("GET", "/v1/models", "The models, in OpenAI's shape.", ok(r.V1_MODELS), auth="v1"),
    Operation(
        "GET",
        "/v1/models/{model_id}",
        "One model, in OpenAI's shape.",
        ok(r.V1_MODEL),
        path_params={"model_id": {"type": "string"}},
        errors=(404,),
        auth="v1",
    ),
    Operation(
        "POST",
        "/v1/chat/completions",
        "OpenAI's chat completions; `stream: true` answers chat.completion.chunk events.",
        {200: {JSON: r.V1_COMPLETION, EVENTS: r.V1_EVENT_STREAM}},
        body=bodies.chat_completion,
        # 500: the reply failed (kept, failed, in the history); the code says why.
        errors=(404, 429, 500, 503),
        auth="v1",
    ),
]
