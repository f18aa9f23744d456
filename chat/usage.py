"""How much someone has used the models: messages, replies, tokens, time to first token.

One function, `usage_for`, serves the account page and the admin's usage view. It is
plain aggregate queries, so it reads the same on SQLite and PostgreSQL: the median
is taken by rank (ORDER BY with an OFFSET), not with a database-specific function.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Sum

from chat.models import Conversation, Message


@dataclass(frozen=True)
class ModelUsage:
    model: str
    replies: int
    output_tokens: int
    ttft_p50_ms: int | None


@dataclass(frozen=True)
class Usage:
    conversations: int
    messages: int
    replies: int
    output_tokens: int  # the replies' and the titles' together
    by_model: list[ModelUsage]
    title_tokens: int = 0  # spent by the models writing conversation titles


def usage_for(user) -> Usage:
    """`user`'s totals, and per model the replies, output tokens and median TTFT."""
    # Assistant turns a client sent along (OpenAI-style) name no model: not our replies.
    replies = Message.objects.for_user(user).filter(role=Message.Role.ASSISTANT).exclude(model="")
    rows = (
        replies.values("model")
        .annotate(replies=Count("id"), tokens=Sum("output_tokens"), timed=Count("ttft_ms"))
        .order_by("model")
    )
    by_model = [
        ModelUsage(
            model=row["model"],
            replies=row["replies"],
            output_tokens=row["tokens"] or 0,
            ttft_p50_ms=_median_ttft(replies.filter(model=row["model"]), row["timed"]),
        )
        for row in rows
    ]
    conversations = Conversation.objects.for_user(user)
    title_tokens = conversations.aggregate(n=Sum("title_tokens"))["n"] or 0
    return Usage(
        conversations=conversations.count(),
        messages=Message.objects.for_user(user).filter(role=Message.Role.USER).count(),
        replies=sum(m.replies for m in by_model),
        output_tokens=sum(m.output_tokens for m in by_model) + title_tokens,
        by_model=by_model,
        title_tokens=title_tokens,
    )


def output_tokens_since(user, since) -> int:
    """The model output tokens spent for `user` since `since`: replies and titles."""
    replies = Message.objects.for_user(user).filter(
        role=Message.Role.ASSISTANT, created_at__gte=since
    )
    titles = Conversation.objects.for_user(user).filter(titled_at__gte=since)
    return (replies.aggregate(n=Sum("output_tokens"))["n"] or 0) + (
        titles.aggregate(n=Sum("title_tokens"))["n"] or 0
    )


def _median_ttft(replies, timed: int) -> int | None:
    """The nearest-rank median of the replies' time to first token; None if none was timed."""
    if not timed:
        return None
    ranked = replies.filter(ttft_ms__isnull=False).order_by("ttft_ms")
    return ranked.values_list("ttft_ms", flat=True)[(timed - 1) // 2]
