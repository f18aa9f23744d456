"""The ORM, as the streaming path reaches it: a few named calls, each run off the event loop.

They all run on one thread of their own, which keeps its database connection open.
Under load this matters: a fresh connection per call (asgiref's default under ASGI)
costs more than the query, and one writer thread never meets another in SQLite's lock.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from chat.errors import Conflict, NotFound, Unavailable
from chat.models import Conversation, Message
from chat.prompt import history

logger = logging.getLogger(__name__)
TITLE_LENGTH = 60
INTERRUPTED = "The server restarted while this reply was being written."
INTERRUPTED_CODE = "interrupted"
# A reply is stored a moment before its run is registered; the reaper leaves young ones alone.
YOUNG = timedelta(seconds=30)


_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chat-db")


def on_db_thread(function):
    """Make `function` awaitable, run on the streaming path's database thread."""

    @functools.wraps(function)
    async def call(*args, **kwargs):
        work = functools.partial(_run, function, args, kwargs)
        return await asyncio.get_running_loop().run_in_executor(_thread, work)

    return call


def _run(function, args, kwargs):
    try:
        return function(*args, **kwargs)
    except (InterfaceError, OperationalError):
        if connection.in_atomic_block:
            raise
        # The database may have dropped our long-lived connection: reconnect once.
        connection.close()
        return function(*args, **kwargs)


def close_connection() -> None:
    """Close the database thread's connection (before dropping a test database, say)."""
    # A lambda: `connection` must be looked up on that thread, where its connection lives.
    _thread.submit(lambda: connection.close()).result()


def title_from(content: str) -> str:
    """A first message, shortened to a sidebar title."""
    line = " ".join(content.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"


@on_db_thread
def begin_reply(
    user,
    conversation_id: int,
    content: str,
    model: str,
    is_running: Callable[[int], bool],
    replace_last: bool = False,
) -> tuple[Conversation, Message, Message, list[dict]]:
    """Store the user's message and an empty streaming reply; return them with the prompt.

    With `replace_last`, the last user message and everything after it are deleted
    first: that is how a reply is regenerated, or the last question edited.
    """
    with transaction.atomic():
        conversation = (
            Conversation.objects.for_user(user)
            .select_for_update()
            .filter(pk=conversation_id)
            .first()
        )
        if conversation is None:
            raise NotFound("No such conversation.")
        _refuse_if_busy(conversation, is_running)
        prior = list(conversation.messages.all())
        if replace_last:
            prior = _drop_last_turn(conversation, prior)
        user_message = conversation.messages.create(role=Message.Role.USER, content=content)
        reply = conversation.messages.create(
            role=Message.Role.ASSISTANT, status=Message.Status.STREAMING, model=model
        )
        conversation.model = model
        conversation.title = conversation.title or title_from(content)
        conversation.save(update_fields=["model", "title", "updated_at"])
    prompt = history(conversation.system_prompt, [*prior, user_message])
    return conversation, user_message, reply, prompt


def _refuse_if_busy(conversation: Conversation, is_running: Callable[[int], bool]) -> None:
    for message in conversation.messages.streaming():
        if is_running(message.id):
            raise Conflict(
                "A reply is still being written in this conversation; stop it or wait.",
                code="reply_in_progress",
            )
        # Nobody is generating it any more (the server restarted): close it honestly.
        message.status = Message.Status.FAILED
        message.error, message.error_code = INTERRUPTED, INTERRUPTED_CODE
        message.save(update_fields=["status", "error", "error_code"])


def _drop_last_turn(conversation: Conversation, prior: list[Message]) -> list[Message]:
    users = [i for i, message in enumerate(prior) if message.role == Message.Role.USER]
    if not users:
        return prior
    conversation.messages.filter(pk__gte=prior[users[-1]].pk).delete()
    return prior[: users[-1]]


@on_db_thread
def reap_interrupted(is_running: Callable[[int], bool]) -> int:
    """Mark streaming replies that no process is writing any more as failed; say how many."""
    old = Message.objects.streaming().filter(created_at__lt=timezone.now() - YOUNG)
    dead = [pk for pk in old.values_list("pk", flat=True) if not is_running(pk)]
    return (
        Message.objects.streaming()
        .filter(pk__in=dead)
        .update(status=Message.Status.FAILED, error=INTERRUPTED, error_code=INTERRUPTED_CODE)
    )


@on_db_thread
def start_conversation(
    user, model: str, title: str, system_prompt: str, turns: list[dict]
) -> Conversation:
    """A new conversation holding the turns a client sent along, each a complete message."""
    with transaction.atomic():
        conversation = Conversation.objects.create(
            owner=user, model=model, title=title, system_prompt=system_prompt
        )
        Message.objects.bulk_create(
            Message(conversation=conversation, role=turn["role"], content=turn["content"])
            for turn in turns
        )
    return conversation


@on_db_thread
def ping() -> None:
    """Raise Unavailable unless the database answers."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        # The driver's text names hosts, ports and users: for the log, not for the caller.
        logger.warning("the database is unreachable", exc_info=True)
        raise Unavailable("The database is unreachable.") from None


@on_db_thread
def checkpoint_replies(contents: dict[int, str]) -> None:
    """Save the text so far of many streaming replies, in one transaction."""
    with transaction.atomic():
        for message_id, content in contents.items():
            Message.objects.filter(pk=message_id, status=Message.Status.STREAMING).update(
                content=content
            )


@on_db_thread
def finish_reply(message_id: int, **fields) -> None:
    """Save the reply's final text, status and timings."""
    Message.objects.filter(pk=message_id).update(**fields)
    Conversation.objects.filter(messages__pk=message_id).update(updated_at=timezone.now())


@on_db_thread
def conversation_for_user(user, conversation_id: int) -> Conversation:
    """The conversation if `user` owns it; NotFound otherwise."""
    conversation = Conversation.objects.for_user(user).filter(pk=conversation_id).first()
    if conversation is None:
        raise NotFound("No such conversation.")
    return conversation


@on_db_thread
def previous_user_message_id(message: Message) -> int | None:
    """The id of the user message a reply answers."""
    earlier = Message.objects.filter(
        conversation_id=message.conversation_id, role=Message.Role.USER, pk__lt=message.pk
    )
    return earlier.order_by("-pk").values_list("pk", flat=True).first()


@on_db_thread
def message_for_user(user, message_id: int) -> Message:
    """The message if `user` owns its conversation; NotFound otherwise."""
    message = Message.objects.for_user(user).filter(pk=message_id).first()
    if message is None:
        raise NotFound("No such message.")
    return message
