"""Conversations and messages as the API shows them."""

from chat.branches import current_branch
from chat.models import Conversation, Message


def conversation_json(conversation: Conversation) -> dict:
    return {
        "id": conversation.id,
        "title": conversation.title,
        "title_source": conversation.title_source,
        "model": conversation.model,
        "system_prompt": conversation.system_prompt,
        "created_at": conversation.created_at.isoformat(),
        "updated_at": conversation.updated_at.isoformat(),
        "current_message_id": conversation.current_message_id,
        "temperature": conversation.temperature,
        "max_tokens": conversation.max_tokens,
    }


def message_json(message: Message) -> dict:
    return {
        "id": message.id,
        "parent_id": message.parent_id,
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "model": message.model,
        "created_at": message.created_at.isoformat(),
        "ttft_ms": message.ttft_ms,
        "output_tokens": message.output_tokens,
        "duration_ms": message.duration_ms,
        "error": message.error,
    }


def conversation_with_messages(conversation: Conversation) -> dict:
    """The conversation with its current branch, root to leaf; each message with its versions."""
    messages = [{**message_json(m), "siblings": ids} for m, ids in current_branch(conversation)]
    return {**conversation_json(conversation), "messages": messages}
