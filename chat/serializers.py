"""Conversations and messages as the API shows them."""

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
    }


def message_json(message: Message) -> dict:
    return {
        "id": message.id,
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
    messages = [message_json(m) for m in conversation.messages.all()]
    return {**conversation_json(conversation), "messages": messages}
