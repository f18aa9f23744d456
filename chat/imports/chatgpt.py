"""ChatGPT's `conversations.json` (Settings → Data controls → Export data).

Each conversation is a tree of message nodes (`mapping`), because an edited question
or a regenerated answer starts a new branch. The branch shown in ChatGPT is the
path from the root to `current_node`; that is the one imported. Tool calls, hidden
messages and non-text content (images, code runs) are left out.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings

from chat.models import Message

from .chatsite import MODEL_LIMIT, TITLE_LIMIT
from .records import ConversationRecord, InvalidImport, MessageRecord

TEXT_TYPES = {"text", "multimodal_text"}
STATUSES = {
    "finished_successfully": Message.Status.COMPLETE,
    "finished_partial_completion": Message.Status.STOPPED,
    "in_progress": Message.Status.STOPPED,
}


def looks_like(data) -> bool:
    return isinstance(data, list)


def parse(data: list) -> list[ConversationRecord]:
    """The visible branch of every conversation; InvalidImport names the first problem."""
    return [_conversation(item, f"conversation {index + 1}") for index, item in enumerate(data)]


def _conversation(item, where: str) -> ConversationRecord:
    if not isinstance(item, dict):
        raise InvalidImport(f"{where} is not an object.")
    mapping = item.get("mapping")
    if not isinstance(mapping, dict) or not all(isinstance(n, dict) for n in mapping.values()):
        raise InvalidImport(f"{where} has no 'mapping' of message nodes.")
    created = _time(item.get("create_time"), where, "create_time") or datetime.now(UTC)
    system, messages = [], []
    for node in _branch(mapping, item.get("current_node"), where):
        message = node.get("message")
        text = _text(message)
        if not text:
            continue
        role = message["author"]["role"]
        if role == "system":
            system.append(text)
            continue
        previous = messages[-1].created_at if messages else created
        moment = _time(message.get("create_time"), where, "create_time") or previous
        messages.append(_message(message, role, text, max(moment, previous)))
    title = item.get("title") if isinstance(item.get("title"), str) else ""
    updated = _time(item.get("update_time"), where, "update_time")
    return ConversationRecord(
        title=title[:TITLE_LIMIT],
        # ChatGPT's models are not served here; the conversation goes on with ours.
        model=settings.CHAT_DEFAULT_MODEL,
        system_prompt="\n\n".join(system),
        created_at=created,
        updated_at=max([created, updated or created, *(m.created_at for m in messages)]),
        messages=messages,
    )


def _branch(mapping: dict, current, where: str) -> list[dict]:
    """The nodes from the root down to `current` (or down the latest replies)."""
    if current is None:
        return _latest_branch(mapping, where)
    if current not in mapping:
        raise InvalidImport(f"{where}: 'current_node' {current!r} is not in its 'mapping'.")
    path, seen, node_id = [], set(), current
    while node_id is not None and node_id in mapping:
        if node_id in seen:
            raise InvalidImport(f"{where}: its message nodes form a loop.")
        seen.add(node_id)
        path.append(mapping[node_id])
        node_id = mapping[node_id].get("parent")
    return path[::-1]


def _latest_branch(mapping: dict, where: str) -> list[dict]:
    roots = [node for node in mapping.values() if node.get("parent") not in mapping]
    path, node = [], roots[0] if roots else None
    while node is not None:
        if len(path) > len(mapping):
            raise InvalidImport(f"{where}: its message nodes form a loop.")
        path.append(node)
        children = [c for c in node.get("children") or [] if c in mapping]
        node = mapping[children[-1]] if children else None
    return path


def _text(message) -> str:
    """The message's visible text, or "" for anything not to import."""
    if not isinstance(message, dict):
        return ""
    author, content = message.get("author"), message.get("content")
    if not isinstance(author, dict) or author.get("role") not in {"system", "user", "assistant"}:
        return ""
    metadata = message.get("metadata") or {}
    if metadata.get("is_visually_hidden_from_conversation"):
        return ""
    if not isinstance(content, dict) or content.get("content_type") not in TEXT_TYPES:
        return ""
    text = "\n".join(part for part in content.get("parts") or [] if isinstance(part, str))
    return text if text.strip() else ""


def _message(message: dict, role: str, text: str, moment: datetime) -> MessageRecord:
    metadata = message.get("metadata") or {}
    model = metadata.get("model_slug") if role == "assistant" else ""
    return MessageRecord(
        role=role,
        content=text,
        created_at=moment,
        status=STATUSES.get(message.get("status"), Message.Status.COMPLETE),
        model=model[:MODEL_LIMIT] if isinstance(model, str) else "",
    )


def _time(value, where: str, name: str) -> datetime | None:
    """A Unix time (ChatGPT's) as a datetime; None when absent."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidImport(f"{where}: '{name}' must be a Unix time in seconds.")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidImport(f"{where}: '{name}' {value!r} is not a usable time.") from None
