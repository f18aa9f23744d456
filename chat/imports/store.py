"""Writing checked conversations without locking anybody else out of the database.

One transaction for a whole history would hold SQLite's only write lock for seconds, and
every other user's send would wait for it. So each conversation is written hidden
(`importing_since` set), in transactions of a few dozen milliseconds each; one short
transaction at the end shows them all at once, and on failure the hidden rows are removed,
a batch at a time.
"""

from __future__ import annotations

import time
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from chat.models import Conversation, Message

from .records import ConversationRecord, MessageRecord

BATCH = 500
# Rows per INSERT, and how long one transaction may hold the database before it lets go
# (it is checked between INSERTs: on a busy machine one of a hundred rows took 150 ms).
ROWS_PER_INSERT = 50
HOLD_SECONDS = 0.05
# SQLite lets one writer in at a time. One that finds the lock taken sleeps and retries,
# each sleep about as long as it has waited so far, never over 100 ms. So after holding
# the lock for t, leaving it free for 2t (and a margin for a late wake-up on a busy
# machine) lets in every writer that waited meanwhile, and no more than 150 ms is ever
# needed. (A fixed 100 ms was too short after long holds: a late waker found the lock
# taken again and waited 0.4 s; and too long after short ones: an import of many small
# conversations spent most of its time pausing.) PostgreSQL locks rows, not the
# database: no pause is needed.
SQLITE_PAUSE_MARGIN = 0.02
SQLITE_PAUSE_SECONDS = 0.15
# Longer than any import takes: hidden rows this old were left by a process that died.
ABANDONED_AFTER = timedelta(hours=1)


def create_hidden(user, record: ConversationRecord) -> int:
    """A new hidden conversation for `record`, without its messages yet; its id."""
    with transaction.atomic():
        conversation = Conversation.objects.create(
            owner=user,
            title=record.title,
            model=record.model,
            system_prompt=record.system_prompt,
            created_at=record.created_at,
            temperature=record.temperature,
            max_tokens=record.max_tokens,
            importing_since=timezone.now(),
        )
        # updated_at is auto_now: only an update() can set it to the recorded time.
        Conversation.objects.filter(pk=conversation.pk).update(updated_at=record.updated_at)
    return conversation.pk


def add_messages(conversation_id: int, messages: list[MessageRecord]) -> list[Message]:
    """Store `messages` in the hidden conversation, in transactions of HOLD_SECONDS or so."""
    rows = [Message(conversation_id=conversation_id, **m.fields()) for m in messages]
    _in_short_transactions(rows, Message.objects.bulk_create)
    return rows


def link_tree(conversation_id: int, record: ConversationRecord, rows: list[Message]) -> None:
    """Point each stored message at its parent, and the conversation at its current leaf."""
    by_key = {m.key: row for m, row in zip(record.messages, rows, strict=True)}
    links = [
        (by_key[m.parent_key].pk, row.pk)
        for m, row in zip(record.messages, rows, strict=True)
        if m.parent_key is not None
    ]
    _in_short_transactions(links, Message.objects.set_parents)
    current = rows[-1] if rows else None
    if record.current_key is not None:
        current = by_key[record.current_key]
    Conversation.objects.filter(pk=conversation_id).update(current_message=current)


def _in_short_transactions(rows: list, write) -> None:
    """`write` the rows ROWS_PER_INSERT at a time, in transactions of HOLD_SECONDS or so."""
    written = 0
    while written < len(rows):
        with transaction.atomic():
            held_since = time.monotonic()
            while written < len(rows) and time.monotonic() - held_since < HOLD_SECONDS:
                write(rows[written : written + ROWS_PER_INSERT])
                written += ROWS_PER_INSERT
        _let_others_write(time.monotonic() - held_since)


def reveal(conversation_ids: list[int]) -> None:
    """Show every imported conversation at once."""
    with transaction.atomic():
        for start in range(0, len(conversation_ids), BATCH):
            chunk = conversation_ids[start : start + BATCH]
            Conversation.objects.filter(pk__in=chunk).update(importing_since=None)


def remove(conversation_ids: list[int]) -> None:
    """Delete hidden conversations and their messages, a batch per transaction."""
    for conversation_id in conversation_ids:
        hidden = Message.objects.filter(
            conversation_id=conversation_id, conversation__importing_since__isnull=False
        )
        while batch := list(hidden.values_list("pk", flat=True)[:BATCH]):
            held_since = time.monotonic()
            Message.objects.filter(pk__in=batch).delete()
            _let_others_write(time.monotonic() - held_since)
        Conversation.objects.filter(pk=conversation_id, importing_since__isnull=False).delete()


def remove_abandoned() -> None:
    """Remove what imports interrupted by a dead process left hidden."""
    old = Conversation.objects.filter(importing_since__lt=timezone.now() - ABANDONED_AFTER)
    remove(list(old.values_list("pk", flat=True)))


def _let_others_write(held: float) -> None:
    """After holding SQLite's write lock for `held` seconds, leave it free for a while."""
    if connection.vendor == "sqlite":
        time.sleep(min(SQLITE_PAUSE_SECONDS, 2 * held + SQLITE_PAUSE_MARGIN))
