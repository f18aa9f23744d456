"""Conversations from a file into a user's history: all of them, or on any error none.

Two kinds of file are read: our own JSON export (`chatsite`), which comes back exactly
as it was, and ChatGPT's `conversations.json` (`chatgpt`), bare or in its zip.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings
from django.db import connection

from chat import parsing, safejson

from . import archive, chatgpt, chatsite, store
from .records import ConversationRecord, InvalidImport

__all__ = [
    "ImportResult",
    "InvalidImport",
    "import_history",
    "import_upload",
    "parse",
    "read_file",
    "read_records",
]

# Imports at once per process; more wait their turn. Each holds a whole file in memory.
_import_threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="chat-import")


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


def read_records(raw: bytes) -> list[ConversationRecord]:
    """Every conversation in an uploaded file, checked; InvalidImport names the first problem."""
    return parse(read_file(raw))


def import_history(user, data) -> ImportResult:
    """Add the file's conversations to `user`'s history: all of them, or on any error none."""
    return _store(user, parse(data))


def _store(user, records: list[ConversationRecord]) -> ImportResult:
    """Write checked conversations hidden, in short transactions; show them all at the end."""
    store.remove_abandoned()
    ids: list[int] = []
    try:
        for record in records:
            ids.append(store.create_hidden(user, record))
            rows = store.add_messages(ids[-1], record.messages)
            store.link_tree(ids[-1], record, rows)
        store.reveal(ids)
    except BaseException:
        store.remove(ids)
        raise
    return ImportResult(ids, sum(len(record.messages) for record in records))


async def import_upload(user, read: Callable[[], bytes]) -> ImportResult:
    """Read an uploaded file with `read` and import it, on a thread kept for imports.

    A big file takes seconds to parse and write; on the event loop, or on the thread
    Django shares between requests, everyone would wait for it. It is parsed and checked
    in chat.parsing's worker process, before anything is written.
    """
    work = functools.partial(_import_upload, user, read)
    return await asyncio.get_running_loop().run_in_executor(_import_threads, work)


def _import_upload(user, read: Callable[[], bytes]) -> ImportResult:
    try:
        return _store(user, parsing.call(read_records, read()))
    finally:
        connection.close()  # this thread's own; the next import opens another
