"""ChatGPT's `conversations.json` (Settings → Data controls → Export data).

Each conversation is a tree of message nodes (`mapping`), because an edited question
or a regenerated answer starts a new branch. Every branch is imported; the one shown
in ChatGPT, from the root to `current_node`, becomes the current branch. Tool calls,
hidden messages and non-text content (images, code runs) are left out: a message
below one of them hangs from the nearest message kept above it.
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
    """Every conversation, all its branches; InvalidImport names the first problem."""
    return [_conversation(item, f"conversation {index + 1}") for index, item in enumerate(data)]


def _conversation(item, where: str) -> ConversationRecord:
    if not isinstance(item, dict):
        raise InvalidImport(f"{where} is not an object.")
    mapping = item.get("mapping")
    if not isinstance(mapping, dict) or not all(isinstance(n, dict) for n in mapping.values()):
        raise InvalidImport(f"{where} has no 'mapping' of message nodes.")
    created = _time(item.get("create_time"), where, "create_time") or datetime.now(UTC)
    current = _get(item, "current_node", str, where)
    if current is not None and current not in mapping:
        raise InvalidImport(f"{where}: 'current_node' {current!r} is not in its 'mapping'.")
    system, messages = [], []
    kept: dict[str, MessageRecord | None] = {}  # node id -> the nearest message kept, up
    for node_id, shown_parent in _walk(mapping, where):
        message = _get(mapping[node_id], "message", dict, f"{where}, node {node_id!r}")
        text, role = _text(message, f"{where}, node {node_id!r}: message") if message else ("", "")
        parent = kept[node_id] = kept.get(shown_parent)
        if not text:
            continue
        if role == "system":
            system.append(text)
            continue
        previous = parent.created_at if parent else created
        moment = _time(message.get("create_time"), where, "create_time") or previous
        record = _message(message, role, text, max(moment, previous), where)
        record.key, record.parent_key = node_id, parent.key if parent else None
        kept[node_id] = record
        messages.append(record)
    updated = _time(item.get("update_time"), where, "update_time")
    leaf = kept.get(current) if current is not None else None
    return ConversationRecord(
        title=(_get(item, "title", str, where) or "")[:TITLE_LIMIT],
        # ChatGPT's models are not served here; the conversation goes on with ours.
        model=settings.CHAT_DEFAULT_MODEL,
        system_prompt="\n\n".join(system),
        created_at=created,
        updated_at=max([created, updated or created, *(m.created_at for m in messages)]),
        messages=messages,
        current_key=leaf.key if leaf else None,
    )


def _walk(mapping: dict, where: str):
    """Every node id with its parent's, parents first, siblings oldest first."""
    children: dict[str | None, list[str]] = {}
    for node_id, node in mapping.items():
        parent = _get(node, "parent", str, f"{where}, node {node_id!r}")
        children.setdefault(parent if parent in mapping else None, []).append(node_id)
    stack = [(node_id, None) for node_id in reversed(_by_time(mapping, children.get(None, [])))]
    seen = 0
    while stack:
        node_id, parent = stack.pop()
        seen += 1
        yield node_id, parent
        below = _by_time(mapping, children.get(node_id, []))
        stack.extend((child, node_id) for child in reversed(below))
    if seen != len(mapping):
        raise InvalidImport(f"{where}: its message nodes form a loop.")


def _by_time(mapping: dict, node_ids: list[str]) -> list[str]:
    def moment(node_id):
        message = mapping[node_id].get("message")
        value = message.get("create_time") if isinstance(message, dict) else None
        return value if isinstance(value, int | float) and not isinstance(value, bool) else 0

    return sorted(node_ids, key=moment)


def _text(message: dict, where: str) -> tuple[str, str]:
    """The message's visible text and its author's role, or "" for anything not to import."""
    author = _get(message, "author", dict, where) or {}
    content = _get(message, "content", dict, where) or {}
    metadata = _get(message, "metadata", dict, where) or {}
    role = _get(author, "role", str, f"{where}.author")
    kind = _get(content, "content_type", str, f"{where}.content")
    parts = _get(content, "parts", list, f"{where}.content") or []
    if role not in {"system", "user", "assistant"} or kind not in TEXT_TYPES:
        return "", ""
    if metadata.get("is_visually_hidden_from_conversation"):
        return "", ""
    # Other parts (images, files) are not text: they are left out.
    text = "\n".join(part for part in parts if isinstance(part, str))
    return (text, role) if text.strip() else ("", "")


def _message(message: dict, role: str, text: str, moment: datetime, where: str) -> MessageRecord:
    metadata = message.get("metadata") or {}
    model = _get(metadata, "model_slug", str, f"{where}: metadata") if role == "assistant" else ""
    status = _get(message, "status", str, where)
    return MessageRecord(
        role=role,
        content=text,
        created_at=moment,
        status=STATUSES.get(status, Message.Status.COMPLETE),
        model=(model or "")[:MODEL_LIMIT],
    )


def _get(container: dict, name: str, kind: type, where: str):
    """container[name]: None when absent or null, InvalidImport when of another type."""
    value = container.get(name)
    if value is None or isinstance(value, kind):
        return value
    what = {dict: "an object", list: "a list", str: "a string"}[kind]
    raise InvalidImport(f"{where}: '{name}' must be {what}, not {type(value).__name__}.")


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
