"""History as files: JSON, JSON Lines or Markdown, written piece by piece.

An export is a generator of text parts. The conversations and their messages are read
with two ORM iterators side by side (a merge join on the conversation id), so however
long the history, only a chunk of each is in memory at once. The API, the admin and
`manage.py export_history` all call `export()`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.db.models import QuerySet
from django.utils import timezone

from chat.branches import Tree
from chat.errors import BadRequest, NotFound
from chat.models import Conversation, Message
from chat.serializers import conversation_json, message_json

FORMAT = "chatsite.export"
VERSION = 1
CHUNK = 500
CONTENT_TYPES = {
    "json": "application/json",
    "jsonl": "application/jsonl",
    "markdown": "text/markdown; charset=utf-8",
}
EXTENSIONS = {"json": "json", "jsonl": "jsonl", "markdown": "md"}

Thread = tuple[Conversation, Iterator[Message]]


@dataclass(frozen=True)
class Download:
    """An export on its way to a client: what to call it, its type, and its text parts."""

    filename: str
    content_type: str
    parts: Iterator[str]


def check_format(fmt: str) -> str:
    """One of the export formats, or a clear 400."""
    if fmt not in CONTENT_TYPES:
        names = ", ".join(CONTENT_TYPES)
        raise BadRequest(f"Unknown format {fmt!r}; use one of {names}.", code="invalid_format")
    return fmt


def export(
    conversations: QuerySet[Conversation], fmt: str, progress: Callable[[], None] | None = None
) -> Iterator[str]:
    """The conversations, oldest first, with their messages, as text parts in `fmt`.

    `progress` is called once after each conversation has been written.
    """
    threads = _threads(conversations)
    if progress is not None:
        threads = _counted(threads, progress)
    return _WRITERS[check_format(fmt)](threads)


def conversation_download(user, conversation_id: int, fmt: str) -> Download:
    """One of `user`'s conversations as a file; NotFound for anyone else's."""
    check_format(fmt)
    found = Conversation.objects.for_user(user).filter(pk=conversation_id)
    if not found.exists():
        raise NotFound("No such conversation.")
    name = f"conversation-{conversation_id}.{EXTENSIONS[fmt]}"
    return Download(name, CONTENT_TYPES[fmt], export(found, fmt))


def account_download(user, fmt: str = "json") -> Download:
    """Everything `user` has said and been told, as one file."""
    check_format(fmt)
    day = timezone.now().date().isoformat()
    name = f"chatsite-{user.get_username()}-{day}.{EXTENSIONS[fmt]}"
    return Download(name, CONTENT_TYPES[fmt], export(Conversation.objects.for_user(user), fmt))


def _threads(conversations: QuerySet[Conversation]) -> Iterator[Thread]:
    """Each conversation with an iterator over its messages, oldest first."""
    messages = (
        Message.objects.filter(conversation__in=conversations.values("pk"))
        .order_by("conversation_id", "created_at", "id")
        .iterator(chunk_size=CHUNK)
    )
    cursor = _MessageCursor(messages)
    ordered = conversations.select_related("owner").order_by("id")
    for conversation in ordered.iterator(chunk_size=CHUNK):
        yield conversation, cursor.take(conversation.id)


class _MessageCursor:
    """Messages sorted by conversation id, handed out one conversation at a time."""

    def __init__(self, messages: Iterator[Message]):
        self._messages = messages
        self._next = next(messages, None)

    def take(self, conversation_id: int) -> Iterator[Message]:
        # `<=` also skips what an earlier caller left unread, or messages of a
        # conversation deleted between the two queries.
        while self._next is not None and self._next.conversation_id <= conversation_id:
            message, self._next = self._next, next(self._messages, None)
            if message.conversation_id == conversation_id:
                yield message


def _counted(threads: Iterator[Thread], progress: Callable[[], None]) -> Iterator[Thread]:
    for thread in threads:
        yield thread
        progress()


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _conversation_head(conversation: Conversation) -> dict:
    return {**conversation_json(conversation), "owner": conversation.owner.get_username()}


def _conversation_json(conversation: Conversation, messages: Iterator[Message]) -> Iterator[str]:
    # An object written in parts: the fields, then the messages array one by one.
    yield _dumps(_conversation_head(conversation))[:-1] + ',"messages":['
    for index, message in enumerate(messages):
        yield ("," if index else "") + _dumps(message_json(message))
    yield "]}"


def _json(threads: Iterator[Thread]) -> Iterator[str]:
    head = {"format": FORMAT, "version": VERSION, "exported_at": timezone.now().isoformat()}
    yield _dumps(head)[:-1] + ',"conversations":[\n'
    for index, (conversation, messages) in enumerate(threads):
        if index:
            yield ",\n"
        yield from _conversation_json(conversation, messages)
    yield "\n]}\n"


def _jsonl(threads: Iterator[Thread]) -> Iterator[str]:
    for conversation, messages in threads:
        yield from _conversation_json(conversation, messages)
        yield "\n"


def _markdown(threads: Iterator[Thread]) -> Iterator[str]:
    # For reading: the branch the user sees. Other versions are in the JSON export.
    for index, (conversation, messages) in enumerate(threads):
        if index:
            yield "\n---\n\n"
        yield _markdown_head(conversation)
        tree = Tree.from_messages(messages)
        branch = tree.current_branch(conversation)
        for message in branch:
            yield _markdown_message(message)
        if len(branch) < len(tree.by_id):
            hidden = len(tree.by_id) - len(branch)
            yield f"*{hidden} messages of other branches are left out; JSON has them all.*\n\n"


def _when(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _quoted(text: str) -> str:
    return "\n".join(f"> {line}".rstrip() for line in text.splitlines())


def _markdown_head(conversation: Conversation) -> str:
    title = conversation.title or f"Conversation {conversation.id}"
    lines = [
        f"# {title}\n",
        f"Model `{conversation.model}`, started {_when(conversation.created_at)}, "
        f"last active {_when(conversation.updated_at)}.\n",
    ]
    if conversation.system_prompt.strip():
        lines.append(f"> **System prompt**\n>\n{_quoted(conversation.system_prompt)}\n")
    return "\n".join(lines) + "\n"


def _markdown_message(message: Message) -> str:
    who = message.get_role_display()
    if message.model:
        who += f" ({message.model})"
    text = f"## {who}, {_when(message.created_at)}\n\n{message.content}\n\n"
    if message.status == Message.Status.STOPPED:
        text += "*Stopped before the end.*\n\n"
    elif message.status == Message.Status.FAILED:
        text += f"*Failed: {message.error or 'no reason given'}*\n\n"
    elif message.status == Message.Status.STREAMING:
        text += "*Still being written when exported.*\n\n"
    return text


_WRITERS: dict[str, Callable[[Iterator[Thread]], Iterator[str]]] = {
    "json": _json,
    "jsonl": _jsonl,
    "markdown": _markdown,
}
