"""The OpenAPI 3.1 document, built from chat.schema.operations."""

from __future__ import annotations

import re

from chat.converters import MAX_ID

from . import responses as r
from .operations import JSON, OPERATIONS, Operation

SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "An API key."},
    "session": {"type": "apiKey", "in": "cookie", "name": "sessionid"},
    "csrf": {
        "type": "apiKey",
        "in": "header",
        "name": "X-CSRFToken",
        "description": "With a session, on unsafe methods: the csrftoken cookie's value.",
    },
}
ERROR_TEXT = {
    400: "A bad request: invalid JSON, a field of the wrong type, or bad text.",
    401: "No or bad credentials.",
    403: "A session request without its CSRF token.",
    404: "No such object (another user's objects too).",
    405: "Another method is needed.",
    409: "One reply at a time per conversation.",
    413: "A body, or a part of it, over its limit.",
    429: "A per-user limit: too many replies at once or per minute, or the day's tokens spent; "
    "`Retry-After` says when to try again.",
    500: "The reply failed.",
    503: "A service this one needs is down.",
}
WITH_BODY = {"POST", "PATCH", "PUT"}
ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}


def document() -> dict:
    """The whole document; the body schemas carry the limits configured now."""
    paths: dict[str, dict] = {}
    for operation in OPERATIONS:
        paths.setdefault(operation.path, {})[operation.method.lower()] = _operation(operation)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "chatsite",
            "version": "1",
            "description": "The native API (/api/) and the OpenAI-compatible one (/v1/).",
        },
        "paths": paths,
        "components": {"securitySchemes": SECURITY_SCHEMES},
    }


def _operation(operation: Operation) -> dict:
    described = {
        "operationId": _operation_id(operation),
        "summary": operation.summary,
        "parameters": _parameters(operation),
        "responses": _responses(operation),
        "security": _security(operation),
    }
    if operation.body is not None:
        described["requestBody"] = {
            "required": True,
            "content": {JSON: {"schema": operation.body()}},
        }
    elif operation.body_types is not None:
        content = {media: {"schema": schema} for media, schema in operation.body_types.items()}
        described["requestBody"] = {"required": True, "content": content}
    return described


def _operation_id(operation: Operation) -> str:
    words = re.findall(r"[a-z0-9]+", operation.path.replace("{", "by_").replace("}", ""))
    return "_".join([operation.method.lower(), *words])


def _parameters(operation: Operation) -> list[dict]:
    params = []
    for name in re.findall(r"{(\w+)}", operation.path):
        schema = operation.path_params.get(name, ID)
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    for name, schema in operation.query.items():
        params.append({"name": name, "in": "query", "required": False, "schema": schema})
    for name, schema in operation.headers.items():
        params.append({"name": name, "in": "header", "required": False, "schema": schema})
    return params


def _responses(operation: Operation) -> dict:
    answers = {
        str(status): {
            "description": "Success.",
            **({"content": {m: {"schema": s} for m, s in media.items()}} if media else {}),
        }
        for status, media in operation.answers.items()
    }
    error_schema = r.OPENAI_ERROR if operation.auth == "v1" else r.ERROR
    for status in _error_statuses(operation):
        answers[str(status)] = {
            "description": ERROR_TEXT[status],
            "content": {JSON: {"schema": error_schema}},
        }
    return answers


def _error_statuses(operation: Operation) -> list[int]:
    statuses = set(operation.errors)
    if operation.auth != "none":
        statuses.add(401)
    if operation.auth == "api" and operation.method in WITH_BODY | {"DELETE"}:
        statuses.add(403)
    if operation.body is not None or operation.body_types is not None:
        statuses |= {400, 413}
    if operation.query:
        statuses.add(400)
    return sorted(statuses)


def _security(operation: Operation) -> list[dict]:
    if operation.auth == "none":
        return []
    if operation.auth == "v1":
        return [{"bearer": []}]
    return [{"bearer": []}, {"session": [], "csrf": []}]
