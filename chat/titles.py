"""Titles written by the model: after a conversation's first reply, a few words that say
what it is about, written in the background by the model that replied.

The first-line title stays until the model's title is stored, and stays for good if the
model fails or the user renames the conversation meanwhile. The title is not a message
and counts against no rate limit, but its tokens are the user's usage
(`Conversation.title_tokens`, summed in chat/usage.py).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging

from django.db import transaction
from django.utils import timezone

from chat import statements
from chat.db import reads, writes
from chat.limits.quota import count_output_tokens
from chat.models import Conversation, Message
from chat.providers import Generation, provider_for
from chat.runs import Run

logger = logging.getLogger(__name__)

TITLE_TOKENS = 16  # the longest title the model may write, in tokens
TITLE_WORDS = 8
TITLE_CHARS = 60
TIMEOUT_SECONDS = 60
EXCERPT_CHARS = 2000  # of the question and the reply: enough to say what it is about
INSTRUCTION = (
    "You write titles for conversations. The message holds the start of a conversation: "
    "a question, then its answer. Reply with a title of two to six words that says what "
    "it is about: no quotes, no full stop, nothing else."
)
MARKUP = "#*_`\"'“”‘’ "  # stripped from the ends of the model's title
REQUEST = "Title of this conversation, in two to six words:"
UNTITLED = "SELECT 1 FROM {table} WHERE {id} = %s AND {title_source} = %s"
SPENT = "UPDATE {table} SET {title_tokens} = {title_tokens} + %s, {titled_at} = %s WHERE {id} = %s"

_tasks: set[asyncio.Task] = set()  # held, so that a running title is not collected
_due: set[int] = set()  # replies still being written whose title will follow


def untitled(conversation: Conversation) -> bool:
    """Whether the conversation still has its first-line title (no model's, no user's)."""
    return conversation.title_source == Conversation.TitleSource.FIRST_LINE


def title_after(run: Run, owner_id: int, question: str) -> None:
    """Once `run` ends, write its conversation's title: the start found it its first reply.

    Where this process wrote the reply, the run holds all the prompt needs; a reply a
    worker wrote is read back (`write_title`).
    """

    _due.add(run.ids.message_id)

    def ended(_task) -> None:
        _due.discard(run.ids.message_id)
        if run.outcome is None:  # written elsewhere
            _spawn(write_title(run.ids.message_id))
        elif run.outcome == Message.Status.COMPLETE:
            ids, model = run.ids, run.generation.model
            prompt = (ids.conversation_id, owner_id, model, _messages(question, run.content))
            _spawn(_write(prompt, checked=False))

    run.task.add_done_callback(ended)


def _spawn(work) -> None:
    # A fresh context: the title outlives the request, as the run does.
    task = asyncio.create_task(work, name="title", context=contextvars.Context())
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def write_title(message_id: int) -> str | None:
    """Have the reply's model title its conversation; the title, or None if none was due."""
    prompt = await _title_prompt(message_id)
    return None if prompt is None else await _write(prompt, checked=True)


async def _write(prompt: tuple[int, int, str, list[dict]], checked: bool) -> str | None:
    """Generate and store the title; `checked`: it is known to be due now."""
    conversation_id, owner_id, model, messages = prompt
    if not checked and not await _still_untitled(conversation_id):
        return None  # renamed while the reply was written: spend no tokens
    generation = Generation(model, messages, max_tokens=TITLE_TOKENS, temperature=0.2)
    try:
        text = await asyncio.wait_for(_generate(generation), TIMEOUT_SECONDS)
    except Exception as exc:  # any failure keeps the first-line title
        logger.warning("no title for conversation %s: %s", conversation_id, exc)
        text = ""
    title = clean_title(text)
    stored = await _store_title(conversation_id, owner_id, title, generation.output_tokens)
    return title if stored else None


async def _generate(generation: Generation) -> str:
    provider = provider_for(generation.model)
    if provider is None:
        raise LookupError(f"the model {generation.model!r} is no longer offered")
    parts = []
    async for text in provider.stream(generation):
        parts.append(text)
    return "".join(parts)


def clean_title(text: str) -> str:
    """The model's answer as a sidebar title: one line, no quotes or markup, a few words."""
    line = next((line for line in text.splitlines() if line.strip()), "")
    line = line.strip().removeprefix("Title:").strip(MARKUP)
    words = line.rstrip(".!").strip(MARKUP).split()[:TITLE_WORDS]
    title = " ".join(words)
    return title if len(title) <= TITLE_CHARS else title[: TITLE_CHARS - 1].rstrip() + "…"


@reads
def _title_prompt(message_id: int) -> tuple[int, int, str, list[dict]] | None:
    """What to ask for the title of the reply's conversation; None if no title is due."""
    reply = Message.objects.select_related("conversation").filter(pk=message_id).first()
    if reply is None or reply.status != Message.Status.COMPLETE:
        return None
    conversation = reply.conversation
    if not untitled(conversation):
        return None
    replies = conversation.messages.filter(role=Message.Role.ASSISTANT)
    if replies.filter(status=Message.Status.COMPLETE).exclude(pk=reply.pk).exists():
        return None  # not the first reply: the conversation had its chance
    question = (
        conversation.messages.filter(role=Message.Role.USER, pk__lt=reply.pk).order_by("pk").first()
    )
    if question is None:
        return None
    messages = _messages(question.content, reply.content)
    return conversation.id, conversation.owner_id, reply.model, messages


def _messages(question: str, reply: str) -> list[dict]:
    """The request for a title: one message, question first (the fake model echoes a
    question that starts "echo ", so its titles are predictable), the way small models are
    best asked for one."""
    excerpt = f"{question[:EXCERPT_CHARS]}\n\n{reply[:EXCERPT_CHARS]}"
    return [
        {"role": "system", "content": INSTRUCTION},
        {"role": "user", "content": f"{excerpt}\n\n{REQUEST}"},
    ]


@reads
def _still_untitled(conversation_id: int) -> bool:
    first_line = Conversation.TitleSource.FIRST_LINE
    return bool(statements.rows(Conversation, UNTITLED, [conversation_id, first_line]))


@writes
def _store_title(conversation_id: int, owner_id: int, title: str, tokens: int) -> bool:
    """Store the title unless the user renamed the conversation meanwhile; count the tokens.

    The tokens were spent either way, so they count even when the title is not kept.
    """
    sources = Conversation.TitleSource
    now = statements.value(Conversation, "titled_at", timezone.now())
    with transaction.atomic():
        statements.execute(Conversation, SPENT, [tokens, now, conversation_id])
        count_output_tokens(owner_id, tokens)  # the day's quota counts them too
        if not title:
            return False
        retitled = {"title": title, "title_source": sources.MODEL}
        where = "{id} = %s AND {title_source} = %s"
        return bool(
            statements.update_where(
                Conversation, retitled, where, [conversation_id, sources.FIRST_LINE]
            )
        )
