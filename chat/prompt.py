"""What the model is shown: the persona, then the conversation, trimmed to fit."""

from django.conf import settings

from chat.models import Message
from chat.providers.base import Generation, Provider

# Replies that failed carry an error, not an answer: the model should not see them.
SHOWN_STATUSES = {Message.Status.COMPLETE, Message.Status.STOPPED}


def history(system_prompt: str, messages) -> list[dict]:
    """The chat messages to send, oldest first, with the system prompt on top."""
    shown = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
    for message in messages:
        if message.role == Message.Role.SYSTEM or not message.content:
            continue
        if message.role == Message.Role.ASSISTANT and message.status not in SHOWN_STATUSES:
            continue
        shown.append({"role": message.role, "content": message.content})
    return shown


def fit_to_context(provider: Provider, generation: Generation) -> list[dict]:
    """Drop the oldest turns until the prompt and the reply fit the model's context window."""
    reply_budget = generation.max_tokens or settings.CHAT_MAX_NEW_TOKENS
    budget = provider.context_window(generation.model) - reply_budget
    system = [m for m in generation.messages if m["role"] == "system"]
    turns = [m for m in generation.messages if m["role"] != "system"]
    while len(turns) > 1 and provider.count_tokens(generation.model, system + turns) > budget:
        turns.pop(0)
        # A conversation shown to a model should start with the user speaking.
        while len(turns) > 1 and turns[0]["role"] == "assistant":
            turns.pop(0)
    return system + turns
