"""The figures behind the charts: one database query per chart, never a loop over messages.

Replies are assistant messages that name a model (a client's earlier turns sent
through /v1 name none). Days are UTC dates. Percentiles are nearest-rank, found in
the same query on SQLite and PostgreSQL alike: window functions number each day's
and model's timed replies by TTFT and count them, and only the rows at rank
ceil(n * p / 100) are read back, at most two per day and model.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from django.db.models import Count, F, Q, Sum, Window
from django.db.models.functions import RowNumber, TruncDate
from django.utils import timezone

from chat.models import Message

PERCENTILES = (50, 95)


@dataclass(frozen=True)
class DayRow:
    day: date
    model: str
    replies: int
    output_tokens: int


@dataclass(frozen=True)
class TtftRow:
    day: date
    model: str
    p50_ms: int
    p95_ms: int


def days_back(days: int) -> list[date]:
    """The last `days` UTC dates, oldest first, today included."""
    today = timezone.now().date()
    return [today - timedelta(days=n) for n in range(days - 1, -1, -1)]


def _replies(days: int, user=None):
    since = timezone.make_aware(
        timezone.datetime.combine(days_back(days)[0], timezone.datetime.min.time())
    )
    replies = Message.objects.filter(role=Message.Role.ASSISTANT, created_at__gte=since)
    if user is not None:
        replies = replies.for_user(user)
    return replies.exclude(model="")


def replies_per_day(days: int, user=None) -> list[DayRow]:
    """Per UTC day and model: replies and output tokens (one query)."""
    rows = (
        _replies(days, user)
        .annotate(day=TruncDate("created_at"))
        .values("day", "model")
        .annotate(replies=Count("id"), tokens=Sum("output_tokens"))
        .order_by("day", "model")
    )
    return [DayRow(r["day"], r["model"], r["replies"], r["tokens"] or 0) for r in rows]


def ttft_per_day(days: int) -> list[TtftRow]:
    """Per UTC day and model: the time to first token's p50 and p95, nearest-rank (one query)."""
    group = [F("day"), F("model")]
    ranked = (
        _replies(days)
        .filter(ttft_ms__isnull=False)
        .annotate(day=TruncDate("created_at"))
        .annotate(
            rank=Window(RowNumber(), partition_by=group, order_by=[F("ttft_ms").asc(), "id"]),
            count=Window(Count("id"), partition_by=group),
        )
    )
    # ceil(count * p / 100) in integer arithmetic, the same on both databases.
    wanted = Q()
    for p in PERCENTILES:
        wanted |= Q(rank=(F("count") * p + 99) / 100)
    rows = ranked.filter(wanted).values_list("day", "model", "rank", "count", "ttft_ms")
    found: dict[tuple, dict[int, int]] = {}
    for day, model, rank, count, ttft in rows:
        at = found.setdefault((day, model), {})
        for p in PERCENTILES:
            if rank == (count * p + 99) // 100:
                at[p] = ttft
    return [TtftRow(day, model, at[50], at[95]) for (day, model), at in sorted(found.items())]


def top_users(days: int, limit: int = 10) -> list[dict]:
    """The users whose replies had the most output tokens: id, username, replies, tokens."""
    rows = (
        _replies(days)
        .values(user_id=F("conversation__owner_id"), username=F("conversation__owner__username"))
        .annotate(replies=Count("id"), tokens=Sum("output_tokens"))
        .filter(tokens__gt=0)
        .order_by("-tokens", "username")[:limit]
    )
    return list(rows)


def streaming_now(limit: int = 50) -> list[Message]:
    """Replies being written right now, oldest first, with their conversation and owner."""
    streaming = Message.objects.streaming().filter(role=Message.Role.ASSISTANT)
    return list(streaming.select_related("conversation__owner").order_by("created_at")[:limit])
