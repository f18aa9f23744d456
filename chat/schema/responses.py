"""What the API answers, as JSON Schema: the shapes chat.serializers and /v1 write."""

from __future__ import annotations

STRING, INTEGER, BOOLEAN = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
NULLABLE_COUNT = {"type": ["integer", "null"]}
TIME = {"type": "string", "format": "date-time"}


def _object(properties: dict, required: list[str] | None = None) -> dict:
    """An object with these properties, all of them required unless `required` says."""
    names = list(properties) if required is None else required
    return {"type": "object", "required": names, "properties": properties}


ERROR = _object(
    {
        "error": _object(
            # retry_after: a 429's seconds to wait, as its Retry-After header says.
            {"code": STRING, "message": STRING, "retry_after": INTEGER},
            required=["code", "message"],
        )
    },
)
OPENAI_ERROR = _object(
    {
        "error": _object(
            {
                "message": STRING,
                "type": STRING,
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            }
        )
    }
)
MODELS = _object(
    {
        "models": {
            "type": "array",
            "items": _object({"id": STRING, "provider": STRING, "default": BOOLEAN}),
        }
    }
)
CONVERSATION = _object(
    {
        "id": INTEGER,
        "title": STRING,
        "title_source": {"enum": ["first_line", "model", "user"]},
        "model": STRING,
        "system_prompt": STRING,
        "created_at": TIME,
        "updated_at": TIME,
        "current_message_id": NULLABLE_COUNT,
        "temperature": {"type": ["number", "null"]},
        "max_tokens": NULLABLE_COUNT,
    }
)
MESSAGE = _object(
    {
        "id": INTEGER,
        "parent_id": NULLABLE_COUNT,
        "siblings": {"type": "array", "items": INTEGER},
        "role": {"enum": ["system", "user", "assistant"]},
        "content": STRING,
        "status": {"enum": ["streaming", "complete", "stopped", "failed"]},
        "model": STRING,
        "created_at": TIME,
        "ttft_ms": NULLABLE_COUNT,
        "output_tokens": NULLABLE_COUNT,
        "duration_ms": NULLABLE_COUNT,
        "error": STRING,
    }
)
CONVERSATION_WITH_MESSAGES = {
    **CONVERSATION,
    "required": [*CONVERSATION["required"], "messages"],
    "properties": {**CONVERSATION["properties"], "messages": {"type": "array", "items": MESSAGE}},
}
CONVERSATIONS = _object({"conversations": {"type": "array", "items": CONVERSATION}})
SHARED_LINK = _object(
    {
        "id": INTEGER,
        "url": {"type": "string", "pattern": "^/s/[A-Za-z0-9_-]+/$"},
        "token": STRING,
        "conversation_id": INTEGER,
        "title": STRING,
        "messages": INTEGER,
        "created_at": TIME,
    }
)
STOPPING = _object({"message_id": INTEGER, "stopping": BOOLEAN})
IMPORTED = _object({"conversations": {"type": "array", "items": INTEGER}, "messages": INTEGER})
# Each event's data is JSON (API.md, The stream); schemathesis checks every event with it.
EVENT_STREAM = {
    "type": "object",
    "description": "Server-Sent Events: start, delta..., then done or error (API.md, The stream).",
}
V1_EVENT_STREAM = {
    "description": "chat.completion.chunk events as JSON, then `data: [DONE]`.",
}
V1_MODEL = _object(
    {"id": STRING, "object": {"const": "model"}, "created": INTEGER, "owned_by": STRING}
)
V1_MODELS = _object({"object": {"const": "list"}, "data": {"type": "array", "items": V1_MODEL}})
V1_COMPLETION = _object(
    {
        "id": STRING,
        "object": {"const": "chat.completion"},
        "created": INTEGER,
        "model": STRING,
        "choices": {
            "type": "array",
            "items": _object(
                {
                    "index": INTEGER,
                    "message": _object(
                        {
                            "role": {"const": "assistant"},
                            "content": STRING,
                            "refusal": {"type": "null"},
                        }
                    ),
                    "logprobs": {"type": "null"},
                    "finish_reason": {"enum": ["stop", "length"]},
                }
            ),
        },
        "usage": _object(
            {"prompt_tokens": INTEGER, "completion_tokens": INTEGER, "total_tokens": INTEGER}
        ),
    }
)
OPENAPI_DOCUMENT = {"type": "object", "description": "This document."}
