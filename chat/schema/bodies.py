"""The request bodies, one JSON Schema each: what views validate, and what is published.

Functions, not constants: limits come from settings. `x-errors` maps a failing keyword
to the error code API.md promises for it (the default is `invalid_field`, and
`content_too_large`, a 413, for maxLength and maxItems).
"""

from __future__ import annotations

from django.conf import settings

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


def conversation_fields() -> dict:
    """POST /api/conversations and PATCH /api/conversations/{id}."""
    return {
        "type": "object",
        "properties": {
            "title": _nullable(_text(TITLE_LIMIT)),
            "system_prompt": _nullable(_text(settings.CHAT_MAX_CONTENT_CHARS)),
            "model": _model(),
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
            "replace_last": {
                "type": ["boolean", "null"],
                "description": "First drop the last user message and what followed it.",
            },
        },
    }  # fmt: skip


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
