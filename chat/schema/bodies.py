"""The request bodies, one JSON Schema each: what views validate, and what is published.

Functions, not constants: limits come from settings. `x-errors` maps a failing keyword
to the error code API.md promises for it (the default is `invalid_field`, and
`content_too_large`, a 413, for maxLength and maxItems).
"""

from __future__ import annotations

from django.conf import settings

from chat.converters import MAX_ID

TITLE_LIMIT = 200
MAX_STOP_SEQUENCES = 4
COMPLETION_ROLES = ["system", "developer", "user", "assistant"]


def _text(limit: int, **extra) -> dict:
    return {"type": "string", "maxLength": limit, **extra}


def _nullable(schema: dict) -> dict:
    return {**schema, "type": [schema["type"], "null"]}


def _model() -> dict:
    return {
        "type": ["string", "null"],
        "description": "A model id from GET /api/models.",
        "x-errors": {"type": "unknown_model"},
    }


def _message_id(description: str, code: str, nullable: bool = False) -> dict:
    return {
        "type": ["integer", "null"] if nullable else "integer",
        "minimum": 1,
        "maximum": MAX_ID,
        "description": description,
        "x-errors": {"type": code, "minimum": code, "maximum": code},
    }


def conversation_fields() -> dict:
    """POST /api/conversations and PATCH /api/conversations/{id}."""
    return {
        "type": "object",
        "properties": {
            "title": _nullable(_text(TITLE_LIMIT)),
            "system_prompt": _nullable(_text(settings.CHAT_MAX_CONTENT_CHARS)),
            "model": _model(),
            "temperature": {
                "type": ["number", "null"],
                "minimum": 0,
                "maximum": 2,
                "description": "This conversation's temperature; null: the model's default.",
            },
            "max_tokens": {
                "type": ["integer", "null"],
                "minimum": 1,
                "description": (
                    "This conversation's longest reply, lowered to CHAT_MAX_NEW_TOKENS; "
                    "null: the site's default."
                ),
            },
            "current_message_id": _message_id(
                "PATCH only: show the branch through this message, down its newest versions.",
                "invalid_message",
            ),
        },
    }


def new_message() -> dict:
    """POST /api/conversations/{id}/messages."""
    content_errors = {"type": "invalid_content", "minLength": "empty_content"}
    return {
        "type": "object",
        "required": ["content"],
        "x-errors": {"required": "invalid_content"},
        "properties": {
            "content": _text(settings.CHAT_MAX_CONTENT_CHARS, minLength=1, **{
                "x-errors": content_errors,
            }),
            "model": _model(),
            "parent_id": _message_id(
                "The reply the message follows (null: the start; absent: the current leaf).",
                "invalid_parent",
                nullable=True,
            ),
            "replace_last": {
                "type": ["boolean", "null"],
                "description": "A new version of the last question: parent_id is its parent.",
            },
        },
    }  # fmt: skip


def regenerate() -> dict:
    """POST /api/messages/{id}/regenerate."""
    return {"type": "object", "properties": {"model": _model()}}


def chat_completion() -> dict:
    """POST /v1/chat/completions (OpenAI's shape; options not listed are ignored)."""
    content_limit = settings.CHAT_MAX_CONTENT_CHARS
    text_part = {
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"const": "text"}, "text": _text(content_limit)},
    }
    message = {
        "type": "object",
        "required": ["role", "content"],
        "properties": {
            "role": {"enum": COMPLETION_ROLES},
            # maxLength applies to a string, items and maxItems to a list of parts.
            "content": {
                "type": ["string", "array"],
                "maxLength": content_limit,
                "items": text_part,
                "maxItems": 64,
            },
        },
    }
    positive = {"type": ["integer", "null"], "minimum": 1}
    return {
        "type": "object",
        "required": ["model", "messages"],
        "x-errors": {"required": "missing_required_parameter"},
        "properties": {
            "model": {"type": "string", "minLength": 1},
            "messages": {
                "type": "array",
                "minItems": 1,
                "maxItems": settings.CHAT_COMPLETION_MAX_MESSAGES,
                "items": message,
            },
            "stream": {"type": ["boolean", "null"]},
            "stream_options": {
                "type": ["object", "null"],
                "properties": {"include_usage": {"type": ["boolean", "null"]}},
            },
            "n": {"enum": [1, None]},
            "max_tokens": positive,
            "max_completion_tokens": positive,
            "temperature": {"type": ["number", "null"], "minimum": 0, "maximum": 2},
            "stop": {
                "anyOf": [
                    {"type": "null"},
                    {"type": "string", "minLength": 1},
                    {
                        "type": "array",
                        "items": {"type": "string", "minLength": 1},
                        "maxItems": MAX_STOP_SEQUENCES,
                        "x-errors": {"maxItems": "invalid_value"},
                    },
                ]
            },
            "tools": {"type": ["array", "null"], "maxItems": 0, "x-errors": {
                "maxItems": "invalid_value",
            }},
            "functions": {"type": ["array", "null"], "maxItems": 0, "x-errors": {
                "maxItems": "invalid_value",
            }},
        },
    }  # fmt: skip
