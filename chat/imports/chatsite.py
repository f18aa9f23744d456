"""Our own export (`chat.exports`, JSON): every field comes back as it was."""

from __future__ import annotations

from chat import exports, tuning
from chat.errors import BadRequest
from chat.models import Conversation, Message

from .records import ConversationRecord, Fields, InvalidImport, MessageRecord, parents_first

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
    record = ConversationRecord(
        title=fields.text("title", TITLE_LIMIT, default=""),
        model=fields.text("model", MODEL_LIMIT),
        system_prompt=fields.text("system_prompt", default=""),
        created_at=fields.time("created_at"),
        updated_at=fields.time("updated_at"),
        temperature=_setting(fields, "temperature", tuning.clean_temperature, "from 0 to 2"),
        max_tokens=_setting(fields, "max_tokens", tuning.clean_max_tokens, "at least 1"),
    )
    messages = [
        _message(Fields(item, f"{fields.where}.messages[{index}]"))
        for index, item in enumerate(fields.items("messages"))
    ]
    record.messages = parents_first(_linked(messages, fields.value["messages"]), fields.where)
    record.current_key = fields.key("current_message_id")
    if record.current_key is not None and record.current_key not in {m.key for m in messages}:
        fields.fail("current_message_id", "the id of one of its messages, or null")
    return record


def _linked(messages: list[MessageRecord], items: list[dict]) -> list[MessageRecord]:
    """Exports from before conversations were trees have no parent_id: one branch, in order."""
    if any("parent_id" in item for item in items):
        return messages
    for index, message in enumerate(messages):
        message.key = index if message.key is None else message.key
        message.parent_key = messages[index - 1].key if index else None
    return messages


def _setting(fields: Fields, name: str, clean, what: str):
    try:
        return clean(fields.value.get(name))
    except BadRequest:
        fields.fail(name, f"a number {what}, or null")


def _message(fields: Fields) -> MessageRecord:
    return MessageRecord(
        key=fields.key("id"),
        parent_key=fields.key("parent_id"),
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
