"""Conversations from a file into a user's history: all of them, or on any error none.

Two kinds of file are read: our own JSON export (`chatsite`), which comes back exactly
as it was, and ChatGPT's `conversations.json` (`chatgpt`), bare or in its zip.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from chat import safejson
from chat.models import Conversation, Message

from . import archive, chatgpt, chatsite
from .records import ConversationRecord, InvalidImport

__all__ = ["ImportResult", "InvalidImport", "import_history", "parse", "read_file"]

BATCH = 500


@dataclass(frozen=True)
class ImportResult:
    conversation_ids: list[int]
    messages: int


def read_file(raw: bytes):
    """The JSON in an uploaded file (or in ChatGPT's export zip); InvalidImport if none."""
    if raw.startswith(b"PK\x03\x04"):
        raw = archive.conversations_json(raw, settings.CHAT_IMPORT_MAX_BYTES)
    try:
        return safejson.loads(raw)
    except safejson.NotJSON as exc:
        raise InvalidImport(f"The file is not valid JSON: {exc}.") from None


def parse(data) -> list[ConversationRecord]:
    """Every conversation in the file, checked; InvalidImport names the first problem."""
    if chatsite.looks_like(data):
        return chatsite.parse(data)
    if chatgpt.looks_like(data):
        return chatgpt.parse(data)
    raise InvalidImport(
        "This is neither a chatsite export (an object with 'conversations') nor "
        "ChatGPT's conversations.json (a list of conversations)."
    )


def import_history(user, data) -> ImportResult:
    """Add the file's conversations to `user`'s history, in one transaction."""
    records = parse(data)
    with transaction.atomic():
        ids = [_store(user, record) for record in records]
    return ImportResult(ids, sum(len(record.messages) for record in records))


def _store(user, record: ConversationRecord) -> int:
    conversation = Conversation.objects.create(
        owner=user,
        title=record.title,
        model=record.model,
        system_prompt=record.system_prompt,
        created_at=record.created_at,
        temperature=record.temperature,
        max_tokens=record.max_tokens,
    )
    stored = Message.objects.bulk_create(
        (Message(conversation=conversation, **m.fields()) for m in record.messages),
        batch_size=BATCH,
    )
    current = _link_tree(record, stored)
    # updated_at is auto_now: only an update() can set it to the recorded time.
    Conversation.objects.filter(pk=conversation.pk).update(
        updated_at=record.updated_at, current_message=current
    )
    return conversation.pk


def _link_tree(record: ConversationRecord, stored: list[Message]) -> Message | None:
    """Point each stored message at its parent (stored first); return the current leaf."""
    by_key = {m.key: message for m, message in zip(record.messages, stored, strict=True)}
    linked = []
    for m, message in zip(record.messages, stored, strict=True):
        if m.parent_key is not None:
            message.parent = by_key[m.parent_key]
            linked.append(message)
    Message.objects.bulk_update(linked, ["parent"], batch_size=BATCH)
    if record.current_key is not None:
        return by_key[record.current_key]
    return stored[-1] if stored else None
