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

from chat import branches
from chat.errors import BadRequest, Conflict, NotFound, Unavailable
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
    model: str,
    is_running: Callable[[int], bool],
    content: str,
    parent=branches.CURRENT_LEAF,
) -> tuple[Conversation, Message, Message, list[dict]]:
    """Store the user's message and an empty streaming reply; return them with the prompt.

    `parent` places the question in the tree (`chat.branches`): after the current leaf,
    as a new version of the last question, or after any reply (an edit of a question).
    """
    with transaction.atomic():
        conversation = _locked_conversation(user, conversation_id, is_running)
        tree = branches.Tree.of(conversation)
        after = branches.parent_for(tree, conversation, parent)
        question = conversation.messages.create(
            role=Message.Role.USER, content=content, parent=after
        )
        reply, prompt = _add_reply(conversation, [*tree.path_to(after), question], model)
        conversation.title = conversation.title or title_from(content)
        conversation.save(update_fields=["model", "title", "current_message", "updated_at"])
    return conversation, question, reply, prompt


@on_db_thread
def begin_regeneration(
    user, conversation_id: int, model: str, is_running: Callable[[int], bool], message_id: int
) -> tuple[Conversation, Message, Message, list[dict]]:
    """Store an empty streaming reply beside reply `message_id`, to the same question."""
    with transaction.atomic():
        conversation = _locked_conversation(user, conversation_id, is_running)
        tree = branches.Tree.of(conversation)
        old = tree.by_id.get(message_id)
        if old is None or old.role != Message.Role.ASSISTANT:
            raise BadRequest("Only a reply can be regenerated.", code="not_a_reply")
        question = tree.by_id.get(old.parent_id)
        if question is None or question.role != Message.Role.USER:
            raise BadRequest("This reply answers no question to ask again.", code="not_a_reply")
        reply, prompt = _add_reply(conversation, tree.path_to(question), model)
        conversation.save(update_fields=["model", "current_message", "updated_at"])
    return conversation, question, reply, prompt


def _locked_conversation(user, conversation_id: int, is_running) -> Conversation:
    conversation = (
        Conversation.objects.for_user(user).select_for_update().filter(pk=conversation_id).first()
    )
    if conversation is None:
        raise NotFound("No such conversation.")
    _refuse_if_busy(conversation, is_running)
    return conversation


def _add_reply(
    conversation: Conversation, branch: list[Message], model: str
) -> tuple[Message, list[dict]]:
    """An empty streaming reply to the branch's last message, made the current leaf."""
    reply = conversation.messages.create(
        role=Message.Role.ASSISTANT, status=Message.Status.STREAMING, model=model, parent=branch[-1]
    )
    conversation.model = model
    conversation.current_message = reply
    return reply, history(conversation.system_prompt, branch)


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
        parent = None
        for turn in turns:
            parent = conversation.messages.create(
                role=turn["role"], content=turn["content"], parent=parent
            )
        conversation.current_message = parent
        conversation.save(update_fields=["current_message"])
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
def message_for_user(user, message_id: int) -> Message:
    """The message if `user` owns its conversation; NotFound otherwise."""
    message = Message.objects.for_user(user).filter(pk=message_id).first()
    if message is None:
        raise NotFound("No such message.")
    return message
