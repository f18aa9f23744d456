"""The ORM, as the streaming path reaches it: a few named calls, each run off the event loop.

Writes run on one thread, reads on a few others; each thread keeps its own database
connection open, and no request ever closes it. Under load this matters: a fresh
connection per call (asgiref's default under ASGI) costs more than the query, one
writer never meets another in SQLite's lock, and a write waiting for that lock (behind
an import, say) never holds up a read such as a stop's or a health check's.
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
from datetime import timedelta

from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from chat import statements
from chat.dbthreads import DatabaseThreads
from chat.errors import NotFound, Unavailable
from chat.models import Conversation, Message, single

logger = logging.getLogger(__name__)
INTERRUPTED = "The server restarted while this reply was being written."
INTERRUPTED_CODE = "interrupted"
# A reply is stored a moment before its run is registered; the reaper leaves young ones alone.
YOUNG = timedelta(seconds=30)
READERS = 4
# What a reply's start reads: of its conversation, and of each message of its tree.
START_FIELDS = (
    "id", "owner_id", "title", "title_source", "model", "system_prompt",
    "current_message_id", "temperature", "max_tokens",
)  # fmt: skip
TREE_FIELDS = ("id", "conversation_id", "parent_id", "role", "content", "status", "model")
STREAMING = Message.Status.STREAMING
CHECKPOINT = "UPDATE {table} SET {content} = %s WHERE {id} = %s AND {status} = %s"
OWNED = "{id} = %s AND {owner_id} = %s AND {importing_since} IS NULL"

_writer = DatabaseThreads(1, "chat-db-write")
_readers = DatabaseThreads(READERS, "chat-db-read")


def _on(threads: DatabaseThreads):
    def decorate(function):
        @functools.wraps(function)
        async def call(*args, **kwargs):
            return await threads.call(_run, function, args, kwargs)

        return call

    return decorate


reads = _on(_readers)
"""Make `function` awaitable, run on one of the streaming path's reading threads."""
writes = _on(_writer)
"""Make `function` awaitable, run on the streaming path's one writing thread."""


def _run(function, args, kwargs):
    try:
        return function(*args, **kwargs)
    except (InterfaceError, OperationalError):
        # The database may have dropped this thread's lasting connection: the next call
        # reconnects. This one is not retried: a write may have happened before the error.
        if not connection.in_atomic_block:
            connection.close()
        logger.warning("a database call failed", exc_info=True)
        raise Unavailable("The database is unreachable.") from None


def close_connection() -> None:
    """Close every database thread's connection (before dropping a test database, say)."""
    # Each close waits for the others, so every reading thread gets one of them.
    barrier = threading.Barrier(READERS)

    def close_reader():
        barrier.wait(10)
        connection.close()  # looked up on that thread, where its connection lives

    closes = [_readers.submit(close_reader) for _ in range(READERS)]
    _writer.submit(lambda: connection.close()).result()
    for close in closes:
        close.result()


def streaming_ids(conversation_id: int) -> list[int]:
    """The ids of the conversation's replies stored as still being written."""
    found = statements.rows(
        Message, "SELECT {id} FROM {table} WHERE {conversation_id} = %s AND {status} = %s",
        [conversation_id, STREAMING],
    )  # fmt: skip
    return [mid for (mid,) in found]


@writes
def in_locked_conversation(user, conversation_id: int, work):
    """Run `work(conversation)` in one transaction, the conversation locked; return its result.

    NotFound unless `user` owns the conversation. An exception from `work` rolls back
    everything it stored.
    """
    with transaction.atomic():
        return work(conversation_to_start(user, conversation_id, lock=True))


def conversation_to_start(user, conversation_id: int, lock=False) -> Conversation:
    """The fields of the user's conversation a start needs (NotFound if not theirs).

    `lock`: locked until the transaction ends, where the database locks rows.
    """
    found = statements.fetch(Conversation, START_FIELDS, OWNED, [conversation_id, user.pk], lock)
    if not found:
        raise NotFound("No such conversation.")
    return found[0]


def tree_messages(conversation_id: int) -> list[Message]:
    """The conversation's messages, oldest first, with the fields a start needs."""
    where = "{conversation_id} = %s ORDER BY {id}"
    return statements.fetch(Message, TREE_FIELDS, where, [conversation_id])


def add_message(conversation: Conversation, parent: Message | None, **fields) -> Message:
    """A new message of the conversation's, answering `parent`."""
    message = Message(conversation=conversation, parent=parent, **fields)
    statements.insert(message)
    return message


def save_conversation(conversation: Conversation, *fields: str) -> None:
    """Store these fields of the conversation (and its `updated_at`)."""
    statements.update(conversation, *fields, "updated_at")


@reads
def old_streaming_replies() -> list[int]:
    """Replies stored as streaming for longer than a start takes: candidates for the reaper."""
    old = Message.objects.streaming().filter(created_at__lt=timezone.now() - YOUNG)
    return list(old.values_list("pk", flat=True))


def mark_interrupted(message_ids, content: str | None = None) -> int:
    """Mark these replies failed, if still streaming, as nobody writes them; say how many.

    `content`: their text as their event log holds it; by default, the last saved text.
    """
    fields = {} if content is None else {"content": content}
    return (
        Message.objects.streaming()
        .filter(pk__in=message_ids)
        .update(
            status=Message.Status.FAILED, error=INTERRUPTED, error_code=INTERRUPTED_CODE, **fields
        )
    )


fail_interrupted = writes(mark_interrupted)
"""`mark_interrupted`, awaited, on the writing thread."""


@writes
def start_conversation(
    user, model: str, title: str, system_prompt: str, turns: list[dict]
) -> Conversation:
    """A new conversation holding the turns a client sent along, each a complete message."""
    with transaction.atomic():
        conversation = Conversation.objects.create(
            owner=user, model=model, title=title, system_prompt=system_prompt
        )
        # In two statements, not one INSERT a turn: a chat of a thousand turns would hold
        # this one writing thread, and every other user's reply, for a fifth of a second.
        rows = Message.objects.bulk_create(
            Message(conversation=conversation, role=turn["role"], content=turn["content"])
            for turn in turns
        )
        Message.objects.set_parents([(a.pk, b.pk) for a, b in itertools.pairwise(rows)])
        conversation.current_message = rows[-1] if rows else None
        conversation.save(update_fields=["current_message"])
    return conversation


@reads
def ping() -> None:
    """Raise Unavailable unless the database answers."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        # The driver's text names hosts, ports and users: for the log, not for the caller.
        logger.warning("the database is unreachable", exc_info=True)
        raise Unavailable("The database is unreachable.") from None


@writes
def checkpoint_replies(contents: dict[int, str]) -> None:
    """Save the text so far of many streaming replies, in one transaction."""
    rows = [(content, message_id, STREAMING) for message_id, content in contents.items()]
    with transaction.atomic():
        statements.execute_many(Message, CHECKPOINT, rows)


@writes
def finish_reply(message_id: int, conversation_id: int | None = None, **fields) -> None:
    """Save the reply's final text, status and timings, unless it has already ended.

    A writer that stalled past its lease may finish after a reader has ended its reply as
    interrupted: the stored reply stays what that reader's followers were shown.
    `conversation_id`, where the caller knows it, spares a join.
    """
    statements.update_where(Message, fields, "{id} = %s AND {status} = %s", [message_id, STREAMING])
    if conversation_id is None:  # not known to the caller: found through a join
        Conversation.objects.filter(messages__pk=message_id).update(updated_at=timezone.now())
    else:
        statements.update_where(
            Conversation, {"updated_at": timezone.now()}, "{id} = %s", [conversation_id]
        )


def owned_conversation(user, conversation_id: int) -> Conversation:
    """The conversation if `user` owns it; NotFound otherwise."""
    conversation = single(Conversation.objects.for_user(user).filter(pk=conversation_id))
    if conversation is None:
        raise NotFound("No such conversation.")
    return conversation


conversation_for_user = reads(owned_conversation)
"""`owned_conversation`, awaited, on a reading thread."""


@reads
def message_for_user(user, message_id: int) -> Message:
    """The message if `user` owns its conversation; NotFound otherwise."""
    message = single(Message.objects.for_user(user).filter(pk=message_id))
    if message is None:
        raise NotFound("No such message.")
    return message
