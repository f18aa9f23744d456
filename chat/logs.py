"""Logs that say whose request they belong to: a request id, a user id, a message id.

Each request gets a context (a dict in a context variable) that the request middleware
opens and the code that learns more fills in: `bind(user_id=..., message_id=...)`.
`ContextFilter` copies it onto every log record, so `LOG_FORMAT=json` prints one JSON
object per line with those fields, and the default text format appends them.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import uuid
from datetime import UTC, datetime

CONTEXT_FIELDS = ("request_id", "user_id", "message_id")
# A client's or proxy's X-Request-ID is kept when it looks like an id, else a new one.
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# What LogRecord has of its own; anything else on a record came in through `extra=`.
_RECORD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "context"}

_context: contextvars.ContextVar[dict | None] = contextvars.ContextVar("log_context", default=None)


def open_context(request_id: str | None = None) -> dict:
    """Start a fresh context for this request (or task); return it."""
    if not request_id or not REQUEST_ID.match(request_id):
        request_id = uuid.uuid4().hex
    context = {"request_id": request_id}
    _context.set(context)
    return context


def current() -> dict:
    """The fields of the context this code runs in (a copy; empty outside any)."""
    return dict(_context.get() or {})


def bind(**fields) -> None:
    """Add fields (user_id, message_id...) to the current context, for later records too.

    Outside any (a websocket's messages), a context is opened for the task at hand.
    """
    context = _context.get()
    if context is None:
        context = open_context()
    context.update({k: v for k, v in fields.items() if v is not None})


class ContextFilter(logging.Filter):
    """Put the context's fields on each record; `record.context` is their text form."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in (_context.get() or {}).items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        shown = [f"{n}={getattr(record, n)}" for n in CONTEXT_FIELDS if hasattr(record, n)]
        record.context = f" [{' '.join(shown)}]" if shown else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context and extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _RECORD_FIELDS and not name.startswith("_"):
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)
