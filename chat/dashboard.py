"""The staff dashboard (/admin/dashboard/) and the account page's chart: stats drawn as charts."""

from __future__ import annotations

from collections import defaultdict

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils import timezone

from chat import charts, stats
from chat.models import Conversation

PERIODS = (7, 30, 90)
DEFAULT_DAYS = 30


def _by_model(rows, value: str) -> dict[str, dict]:
    series: dict[str, dict] = defaultdict(dict)
    for row in rows:
        series[row.model][row.day] = getattr(row, value)
    return series


def staff_charts(days: int) -> dict:
    """Replies and tokens per day per model, TTFT p50/p95, top users: four queries."""
    dates = stats.days_back(days)
    daily = stats.replies_per_day(days)
    ttft: dict[tuple[str, str], dict] = defaultdict(dict)
    for row in stats.ttft_per_day(days):
        ttft[row.model, "p50"][row.day] = row.p50_ms
        ttft[row.model, "p95"][row.day] = row.p95_ms
    top = [(u["username"], u["tokens"]) for u in stats.top_users(days)]
    return {
        "replies": charts.stacked_bars(
            "replies-chart", "Replies per day", dates, _by_model(daily, "replies"), "replies"
        ),
        "tokens": charts.stacked_bars(
            "tokens-chart",
            "Output tokens per day",
            dates,
            _by_model(daily, "output_tokens"),
            "tokens",
        ),
        "ttft": charts.day_lines(
            "ttft-chart", "Time to first token per day (p50, p95)", dates, ttft, "ms"
        ),
        "top_users": charts.ranked_bars(
            "top-users-chart", f"Top users by output tokens, last {days} days", top, "tokens"
        ),
    }


def account_chart(user, days: int = DEFAULT_DAYS) -> charts.Chart:
    """`user`'s own output tokens per day, by model (one query)."""
    rows = stats.replies_per_day(days, user=user)
    return charts.stacked_bars(
        "my-tokens-chart",
        f"Your output tokens per day, last {days} days",
        stats.days_back(days),
        _by_model(rows, "output_tokens"),
        "tokens",
    )


def _days(request) -> int:
    try:
        days = int(request.GET.get("days", DEFAULT_DAYS))
    except ValueError:
        return DEFAULT_DAYS
    return days if days in PERIODS else DEFAULT_DAYS


def dashboard_view(request):
    """The staff's view of the site: what streams now, and the last days' charts."""
    if not request.user.has_perm("chat.view_conversation"):
        raise PermissionDenied
    days = _days(request)
    context = {
        **admin.site.each_context(request),
        "title": "Dashboard",
        "opts": Conversation._meta,
        "days": days,
        "periods": PERIODS,
        "streaming": stats.streaming_now(),
        "now": timezone.now(),
        **staff_charts(days),
    }
    return TemplateResponse(request, "admin/chat/dashboard.html", context)
