"""Per-chat settings: the temperature and the longest reply, kept within the site's limits.

A conversation may store its own `temperature` (0 to 2) and `max_tokens` (at most
CHAT_MAX_NEW_TOKENS); null means the model's and the site's defaults. Every reply in
it uses them, unless its door (the OpenAI-compatible API) names its own.
"""

from __future__ import annotations

from django.conf import settings

from chat.errors import BadRequest
from chat.models import Conversation

MAX_TEMPERATURE = 2.0


def clean_temperature(value) -> float | None:
    """A temperature from 0 to 2, or None (the model's default); anything else is a 400."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise BadRequest("'temperature' must be a number from 0 to 2, or null.", "invalid_field")
    if not 0 <= value <= MAX_TEMPERATURE:
        raise BadRequest("'temperature' must be from 0 to 2.", "invalid_field")
    return float(value)


def clean_max_tokens(value) -> int | None:
    """A reply length of at least 1, lowered to CHAT_MAX_NEW_TOKENS; None: the site's."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest(
            "'max_tokens' must be a whole number of at least 1, or null.", "invalid_field"
        )
    return min(value, settings.CHAT_MAX_NEW_TOKENS)


def settings_fields(body: dict) -> dict:
    """The per-chat settings a request body sets (null resets one to the default)."""
    cleaners = {"temperature": clean_temperature, "max_tokens": clean_max_tokens}
    return {name: clean(body[name]) for name, clean in cleaners.items() if name in body}


def options_for(conversation: Conversation, options: dict) -> dict:
    """What a reply is generated with: the request's own options over the conversation's."""
    stored = {"temperature": conversation.temperature, "max_tokens": conversation.max_tokens}
    merged = {**{k: v for k, v in stored.items() if v is not None}, **options}
    if merged.get("max_tokens") is not None:
        # The limit may have been lowered since the conversation stored its own.
        merged["max_tokens"] = min(merged["max_tokens"], settings.CHAT_MAX_NEW_TOKENS)
    return merged
