"""What an import produces before anything is stored, and how a bad file is described."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.utils.dateparse import parse_datetime

from chat.errors import BadRequest

# PositiveIntegerField's ceiling on every database Django supports.
MAX_COUNT = 2_147_483_647


class InvalidImport(BadRequest):
    """The file cannot be imported; the message says where and why. Nothing was stored."""

    code = "invalid_import"


@dataclass
class MessageRecord:
    """One message to store; `key` and `parent_key` are its and its parent's ids in the file."""

    role: str
    content: str
    created_at: datetime
    status: str = "complete"
    model: str = ""
    ttft_ms: int | None = None
    output_tokens: int | None = None
    duration_ms: int | None = None
    error: str = ""
    key: object = None
    parent_key: object = None

    def fields(self) -> dict:
        """The Message fields, without the file's ids."""
        # Not asdict(), which deep-copies every value: a fifth of a large import's time.
        return {name: getattr(self, name) for name in MESSAGE_FIELDS}


MESSAGE_FIELDS = [
    f.name for f in dataclasses.fields(MessageRecord) if f.name not in {"key", "parent_key"}
]


@dataclass
class ConversationRecord:
    title: str
    model: str
    system_prompt: str
    created_at: datetime
    updated_at: datetime
    messages: list[MessageRecord] = field(default_factory=list)
    # The key of the current branch's leaf; None: the last message's branch.
    current_key: object = None
    temperature: float | None = None
    max_tokens: int | None = None


def parents_first(messages: list[MessageRecord], where: str) -> list[MessageRecord]:
    """The messages ordered so each parent comes before its children (else in file order).

    Keys must be unique, parents must be in the same conversation, and there are no loops.
    """
    by_key: dict[object, MessageRecord] = {}
    for message in messages:
        if message.key in by_key:
            raise InvalidImport(f"{where}: the message id {message.key!r} appears twice.")
        by_key[message.key] = message
    children: dict[object, list[MessageRecord]] = {}
    for message in messages:
        if message.parent_key is not None and message.parent_key not in by_key:
            raise InvalidImport(
                f"{where}: parent_id {message.parent_key!r} is not a message of it."
            )
        children.setdefault(message.parent_key, []).append(message)
    ordered, stack = [], list(reversed(children.get(None, [])))
    while stack:
        message = stack.pop()
        ordered.append(message)
        stack.extend(reversed(children.get(message.key, [])))
    if len(ordered) != len(messages):
        raise InvalidImport(f"{where}: its messages' parent_ids form a loop.")
    return ordered


class Fields:
    """Typed reads from one JSON object, with errors that say where in the file."""

    def __init__(self, value, where: str):
        if not isinstance(value, dict):
            raise InvalidImport(f"{where} must be an object.")
        self.value = value
        self.where = where

    def fail(self, name: str, what: str):
        raise InvalidImport(f"{self.where}.{name} must be {what}.")

    def text(self, name: str, limit: int | None = None, default: str | None = None) -> str:
        value = self.value.get(name, default)
        if not isinstance(value, str):
            self.fail(name, "a string")
        if limit is not None and len(value) > limit:
            self.fail(name, f"at most {limit} characters long")
        return value

    def choice(self, name: str, choices) -> str:
        value = self.value.get(name)
        if value not in choices:
            self.fail(name, "one of " + ", ".join(choices))
        return value

    def count(self, name: str) -> int | None:
        value = self.value.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
            self.fail(name, "a whole number of at least 0, or null")
        return value

    def key(self, name: str) -> int | None:
        """A message id (or a reference to one), or None when absent."""
        value = self.value.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            self.fail(name, "a message id (a whole number), or null")
        return value

    def time(self, name: str) -> datetime:
        raw = self.value.get(name)
        try:
            moment = parse_datetime(raw) if isinstance(raw, str) else None
            # In UTC, as it will be stored: an offset may carry it past year 1 or 9999.
            moment = moment and (moment if moment.tzinfo else moment.replace(tzinfo=UTC))
            moment = moment and moment.astimezone(UTC)
        except (ValueError, OverflowError):  # well formed, but no such moment
            moment = None
        if moment is None:
            self.fail(name, "an ISO 8601 date and time")
        return moment

    def items(self, name: str) -> list:
        value = self.value.get(name)
        if not isinstance(value, list):
            self.fail(name, "a list")
        return value
