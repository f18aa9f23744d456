"""Our own export (`chat.exports`, JSON): every field comes back as it was."""

from __future__ import annotations

from chat import exports
from chat.models import Conversation, Message

from .records import ConversationRecord, Fields, InvalidImport, MessageRecord

TITLE_LIMIT = Conversation._meta.get_field("title").max_length
MODEL_LIMIT = Conversation._meta.get_field("model").max_length


def looks_like(data) -> bool:
    return isinstance(data, dict) and "conversations" in data


def parse(data: dict) -> list[ConversationRecord]:
    """The conversations of a chatsite export; InvalidImport names the first problem."""
    if data.get("format", exports.FORMAT) != exports.FORMAT:
        raise InvalidImport(f"'format' must be {exports.FORMAT!r}.")
    if data.get("version", exports.VERSION) != exports.VERSION:
        raise InvalidImport(f"This site reads export version {exports.VERSION} only.")
    top = Fields(data, "the file")
    return [
        _conversation(Fields(item, f"conversations[{index}]"))
        for index, item in enumerate(top.items("conversations"))
    ]


def _conversation(fields: Fields) -> ConversationRecord:
    return ConversationRecord(
        title=fields.text("title", TITLE_LIMIT, default=""),
        model=fields.text("model", MODEL_LIMIT),
        system_prompt=fields.text("system_prompt", default=""),
        created_at=fields.time("created_at"),
        updated_at=fields.time("updated_at"),
        messages=[
            _message(Fields(item, f"{fields.where}.messages[{index}]"))
            for index, item in enumerate(fields.items("messages"))
        ],
    )


def _message(fields: Fields) -> MessageRecord:
    return MessageRecord(
        role=fields.choice("role", Message.Role.values),
        content=fields.text("content"),
        status=fields.choice("status", Message.Status.values),
        model=fields.text("model", MODEL_LIMIT, default=""),
        created_at=fields.time("created_at"),
        ttft_ms=fields.count("ttft_ms"),
        output_tokens=fields.count("output_tokens"),
        duration_ms=fields.count("duration_ms"),
        error=fields.text("error", default=""),
    )
