"""The use-cases of a reply: start, follow, stop. Views, consumers and commands call these."""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from asgiref.sync import async_to_sync
from django.conf import settings

from chat import branches, db, events, limits, logs, telemetry, titles, tuning
from chat.db import INTERRUPTED, reads
from chat.errors import BadRequest, ChatError, Conflict, TooLarge, Unavailable
from chat.events import Event
from chat.models import Conversation, Message
from chat.prompt import history
from chat.providers import Generation, provider_for
from chat.runs import ReplyIds, Run, registry

TITLE_LENGTH = 60


def title_from(content: str) -> str:
    """A first message, shortened to a sidebar title."""
    line = " ".join(content.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"


def clean_content(content) -> str:
    """The user's text, or a clear error: missing, empty and oversized content are refused."""
    if not isinstance(content, str):
        raise BadRequest("Send the message text as a string in 'content'.", code="invalid_content")
    if not content.strip():
        raise BadRequest("The message is empty.", code="empty_content")
    limit = settings.CHAT_MAX_CONTENT_CHARS
    if len(content) > limit:
        raise TooLarge(f"The message is {len(content)} characters long; the limit is {limit}.")
    return content


def check_model(model) -> str:
    """A model id some provider offers; unknown ids are refused."""
    if model is None:
        return settings.CHAT_DEFAULT_MODEL
    if not isinstance(model, str) or provider_for(model) is None:
        raise BadRequest(
            f"Unknown model {model!r}; GET /api/models lists them.", code="unknown_model"
        )
    return model


async def start_reply(
    user,
    conversation_id: int,
    content,
    model=None,
    parent=branches.CURRENT_LEAF,
    titled=True,
    **options,
) -> Run:
    """Store the user's message and start the model's reply as a run; return the run.

    `parent` places the message in the conversation's tree (`chat.branches`): after the
    current leaf, as a new version of the last question, or after any reply (an edit).
    `titled`: after a first reply, the model writes the conversation's title.
    """
    content = clean_content(content)
    store = functools.partial(_ask, content=content, title=title_from(content), parent=parent)
    return await _start(user, conversation_id, model, store, titled, options)


async def regenerate_reply(user, message_id: int, model=None, **options) -> Run:
    """Start a new version of reply `message_id`, to the same question; return the run."""
    message = await db.message_for_user(user, message_id)
    store = functools.partial(_ask_again, message_id=message_id)
    return await _start(user, message.conversation_id, model, store, True, options)


async def _start(user, conversation_id: int, model, store, titled: bool, options: dict) -> Run:
    started = time.monotonic()
    logs.bind(user_id=user.pk)
    conversation, streaming, today = await _read_for_start(user, conversation_id)
    model = check_model(model if model is not None else (conversation.model or None))
    await registry().check()  # refuse now, before anything is stored, if Redis is down
    async with limits.admitted(user, today) as slot:
        begun = await _begin(user, conversation.id, model, store, streaming)
        return await _launch(begun, model, options, slot, started, titled)


@reads
def _read_for_start(user, conversation_id: int):
    """What a start reads before it writes, in one trip to a reading thread: the user's
    conversation (NotFound if not theirs), its replies stored as streaming, the limits."""
    conversation = db.conversation_to_start(user, conversation_id)
    return conversation, db.streaming_ids(conversation.id), limits.today_for(user)


@dataclass
class Begun:
    """What a start stored: the question, the empty reply, the prompt to answer."""

    conversation: Conversation
    question: Message
    reply: Message
    prompt: list[dict]
    first_reply: bool  # no reply of the conversation is complete yet: a title is due after


async def _begin(user, conversation_id: int, model: str, store, streaming: list[int]) -> Begun:
    """Store the message(s) with `store` (`_ask`, `_ask_again`); Conflict while a reply runs.

    `streaming`: the conversation's replies stored as streaming, read before.
    """
    # Asked before the transaction: no network round trip while the conversation is locked.
    dead = {mid for mid in streaming if not await registry().is_running(mid)}
    work = functools.partial(_when_free, dead=dead, store=functools.partial(store, model=model))
    return await db.in_locked_conversation(user, conversation_id, work)


def _when_free(conversation: Conversation, dead: set[int], store) -> Begun:
    """In the conversation's lock: refuse while a reply is being written, else `store`.

    Replies stored as streaming that nobody writes any more (`dead`) are failed first.
    """
    tree = branches.Tree.from_messages(db.tree_messages(conversation.id))
    streaming = {m.id for m in tree.by_id.values() if m.status == Message.Status.STREAMING}
    if streaming - dead:
        raise Conflict(
            "A reply is still being written in this conversation; stop it or wait.",
            code="reply_in_progress",
        )
    if streaming:
        db.mark_interrupted(streaming)
        for mid in streaming:
            tree.by_id[mid].status = Message.Status.FAILED
    return store(conversation, tree)


def _ask(
    conversation: Conversation, tree: branches.Tree, model: str, content: str, title: str, parent
):
    """Store the user's question and an empty streaming reply.

    `parent` places the question in the tree (`chat.branches`): after the current leaf,
    as a new version of the last question, or after any reply (an edit of a question).
    A conversation without a title takes `title`.
    """
    after = branches.parent_for(tree, conversation, parent)
    question = db.add_message(conversation, after, role=Message.Role.USER, content=content)
    begun = _add_reply(conversation, tree, [*tree.path_to(after), question], model)
    conversation.title = conversation.title or title
    db.save_conversation(conversation, "model", "title", "current_message")
    return begun


def _ask_again(conversation: Conversation, tree: branches.Tree, model: str, message_id: int):
    """Store an empty streaming reply beside reply `message_id`, to the same question."""
    old = tree.by_id.get(message_id)
    if old is None or old.role != Message.Role.ASSISTANT:
        raise BadRequest("Only a reply can be regenerated.", code="not_a_reply")
    question = tree.by_id.get(old.parent_id)
    if question is None or question.role != Message.Role.USER:
        raise BadRequest("This reply answers no question to ask again.", code="not_a_reply")
    begun = _add_reply(conversation, tree, tree.path_to(question), model)
    db.save_conversation(conversation, "model", "current_message")
    return begun


def _add_reply(conversation: Conversation, tree: branches.Tree, branch: list[Message], model: str):
    """An empty streaming reply to the branch's last message, made the current leaf."""
    first = not any(
        m.role == Message.Role.ASSISTANT and m.status == Message.Status.COMPLETE
        for m in tree.by_id.values()
    )
    reply = db.add_message(
        conversation, branch[-1], role=Message.Role.ASSISTANT, status=Message.Status.STREAMING,
        model=model,
    )  # fmt: skip
    conversation.model = model
    conversation.current_message = reply
    prompt = history(conversation.system_prompt, branch)
    return Begun(conversation, branch[-1], reply, prompt, first)


async def _launch(begun: Begun, model, options: dict, slot: limits.Slot, started, titled) -> Run:
    conversation, reply = begun.conversation, begun.reply
    ids = ReplyIds(reply.id, begun.question.id, conversation.id)
    options = tuning.options_for(conversation, options)
    options["max_tokens"] = capped_max_tokens(options.get("max_tokens"))
    run = Run(ids, provider_for(model), Generation(model, begun.prompt, **options), started)
    limits.hold_until_end(slot, run)
    try:
        await registry().launch(run)
    except ChatError as error:
        await db.finish_reply(
            reply.id, status=Message.Status.FAILED, error=error.message, error_code=error.code
        )
        raise
    if titled and begun.first_reply and titles.untitled(conversation):
        titles.title_after(run, conversation.owner_id, begun.question.content)
    return run


def capped_max_tokens(requested: int | None) -> int:
    """The most tokens a reply may have: what the client asked, never above CHAT_MAX_NEW_TOKENS."""
    cap = settings.CHAT_MAX_NEW_TOKENS
    return cap if requested is None else min(requested, cap)


async def start_completion(user, messages: list[dict], model, **options) -> Run:
    """Start a reply to a whole chat sent at once (the OpenAI-compatible door).

    The chat becomes a new conversation of `user`'s: titled from its first user message,
    system messages as its system prompt, earlier turns stored as complete messages. The
    last message, the user's, then starts a reply as `start_reply` does; the limits are
    checked before the conversation is stored.
    """
    started = time.monotonic()
    logs.bind(user_id=user.pk)
    model = check_model(model)
    if not messages or messages[-1].get("role") != Message.Role.USER:
        raise BadRequest("The last message must be the user's.", code="invalid_messages")
    if any(m.get("role") not in Message.Role.values for m in messages):
        raise BadRequest("Roles are system, user and assistant.", code="invalid_messages")
    _check_chat_size(messages)
    *earlier, last = messages
    content = clean_content(last.get("content"))
    system = "\n\n".join(m["content"] for m in earlier if m["role"] == Message.Role.SYSTEM)
    turns = [m for m in earlier if m["role"] != Message.Role.SYSTEM]
    first = next(m["content"] for m in messages if m["role"] == Message.Role.USER)
    await registry().check()
    async with limits.admitted(user) as slot:
        conversation = await db.start_conversation(user, model, title_from(first), system, turns)
        store = functools.partial(
            _ask, content=content, title=title_from(content), parent=branches.CURRENT_LEAF
        )
        begun = await _begin(user, conversation.id, model, store, streaming=[])
        # A script's call is no chat to find in a sidebar: no title is worth its tokens.
        return await _launch(begun, model, options, slot, started, titled=False)


def _check_chat_size(messages: list[dict]) -> None:
    """Every turn within CHAT_MAX_CONTENT_CHARS, and all of them within the chat's cap."""
    limit = settings.CHAT_MAX_CONTENT_CHARS
    for index, message in enumerate(messages):
        if len(message["content"]) > limit:
            size = len(message["content"])
            raise TooLarge(f"messages[{index}] is {size} characters long; the limit is {limit}.")
    total, cap = sum(len(m["content"]) for m in messages), settings.CHAT_COMPLETION_MAX_CHARS
    if total > cap:
        raise TooLarge(f"The messages hold {total} characters together; the limit is {cap}.")


async def follow_run(run: Run) -> AsyncIterator[Event | None]:
    """The events of a reply this request just started, from its first."""
    events = await registry().follow(run.ids.message_id, -1)
    if events is None:  # its start could not be written (Redis went away just now)
        raise Unavailable("The reply started but cannot be followed; reload in a moment.")
    return telemetry.listening(events)


async def stop_reply(user, message_id: int) -> bool:
    """Stop the user's reply if it is still being written; the text so far is kept."""
    await db.message_for_user(user, message_id)
    return await registry().stop(message_id)


def delete_conversation(conversation: Conversation) -> None:
    """Delete a conversation; a reply still being written in it is stopped first."""
    for message_id in conversation.messages.streaming().values_list("pk", flat=True):
        async_to_sync(registry().stop)(message_id)
    conversation.delete()


async def follow_reply(user, message_id: int, after_seq: int) -> AsyncIterator[Event | None]:
    """The reply's events after `after_seq`: live while it runs, from the database after."""
    message = await db.message_for_user(user, message_id)
    live = await registry().follow(message_id, after_seq)
    return telemetry.listening(live if live is not None else _replay_stored(message, after_seq))


async def _replay_stored(message: Message, after_seq: int) -> AsyncIterator[Event]:
    """A reply whose event log is gone, told again from the database.

    From the start it is `start`, one `delta` with the whole text, and the end. A client
    that had seen some events gets a `snapshot` of the whole text instead, which replaces
    what it has, then the end; numbered on from its last event, so it takes them as new.
    """
    mid = message.id
    if after_seq < 0:
        yield Event(
            mid,
            0,
            events.START,
            events.start_data(mid, message.parent_id, message.conversation_id, message.model),
        )
        yield Event(mid, 1, events.DELTA, events.delta_data(message.content))
        after_seq = 1
    else:
        after_seq += 1
        yield Event(mid, after_seq, events.SNAPSHOT, events.snapshot_data(mid, message.content))
    yield Event(mid, after_seq + 1, *_stored_end(message))


def _stored_end(message: Message) -> tuple[str, dict]:
    """The event that ends a stored reply: `done`, or `error` with the code it failed with."""
    if message.status == Message.Status.FAILED:
        code = message.error_code or "generation_failed"
        return events.ERROR, events.error_data(message.id, code, message.error)
    if message.status == Message.Status.STREAMING:
        # No process is writing it any more: say so rather than wait forever.
        return events.ERROR, events.error_data(message.id, db.INTERRUPTED_CODE, INTERRUPTED)
    metrics = (message.ttft_ms, message.output_tokens, message.duration_ms)
    return events.DONE, events.done_data(message.id, message.status, *metrics)
