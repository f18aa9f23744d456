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
    """The newest turns that fit the model's context window with the reply, and the system.

    Linear: each turn is counted once (provider.count_each) and the newest are kept while
    their running total fits. The counts of a turn alone may differ a little from its
    share of the whole prompt, so the result is measured once whole, and cut again by
    the difference if it is still too long.
    """
    reply_budget = generation.max_tokens or settings.CHAT_MAX_NEW_TOKENS
    budget = provider.context_window(generation.model) - reply_budget
    system = [m for m in generation.messages if m["role"] == "system"]
    turns = [m for m in generation.messages if m["role"] != "system"]
    counts = provider.count_each(generation.model, turns)
    fixed = provider.count_tokens(generation.model, system) if system else 0
    start = _first_kept(counts, budget - fixed, 0)
    for _ in range(EXACT_CHECKS):
        start = _start_with_user(turns, start)
        over = provider.count_tokens(generation.model, system + turns[start:]) - budget
        if over <= 0 or start >= len(turns) - 1:
            break
        start = _first_kept(counts, sum(counts[start:]) - over, start)
    return system + turns[start:]


# How often the cut is checked against the whole prompt's exact count.
EXACT_CHECKS = 3


def _first_kept(counts: list[int], budget: int, start: int) -> int:
    """The oldest turn (at `start` or later) kept when the newest fill `budget`.

    The newest turn is kept whatever its size: the question is never dropped.
    """
    if not counts:
        return 0
    first, total = len(counts) - 1, counts[-1]
    while first > start and total + counts[first - 1] <= budget:
        first -= 1
        total += counts[first]
    return first


def _start_with_user(turns: list[dict], start: int) -> int:
    """A conversation shown to a model should start with the user speaking."""
    while start < len(turns) - 1 and turns[start]["role"] == "assistant":
        start += 1
    return start
