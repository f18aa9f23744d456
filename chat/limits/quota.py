"""Each user's limits (the site's, or staff's values for them) and the day's output tokens."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from chat import statements
from chat.errors import LimitExceeded
from chat.models import DailyUsage, UserLimits

OWN_LIMITS = ("max_concurrent_replies", "replies_per_minute", "output_tokens_per_day")
USED = "SELECT {output_tokens} FROM {table} WHERE {user_id} = %s AND {day} = %s"
ADD = (
    "UPDATE {table} SET {output_tokens} = {output_tokens} + %s WHERE {user_id} = %s AND {day} = %s"
)


@dataclass(frozen=True)
class Limits:
    max_concurrent_replies: int
    replies_per_minute: int
    output_tokens_per_day: int  # 0: no limit


@dataclass(frozen=True)
class Today:
    """What the account page shows: the limits, and the tokens used today against the quota."""

    limits: Limits
    output_tokens: int
    resets_at: datetime

    @property
    def quota(self) -> int:
        return self.limits.output_tokens_per_day

    @property
    def spent(self) -> bool:
        return bool(self.quota) and self.output_tokens >= self.quota


def limits_for(user) -> Limits:
    """The user's own limits where staff set them, the site's otherwise."""
    own = next(iter(statements.fetch(UserLimits, OWN_LIMITS, "{user_id} = %s", [user.pk])), None)

    def pick(name: str, site: int) -> int:
        value = getattr(own, name, None)
        return site if value is None else value

    return Limits(
        pick("max_concurrent_replies", settings.CHAT_USER_MAX_CONCURRENT_REPLIES),
        pick("replies_per_minute", settings.CHAT_USER_REPLIES_PER_MINUTE),
        pick("output_tokens_per_day", settings.CHAT_USER_OUTPUT_TOKENS_PER_DAY),
    )


def today_for(user) -> Today:
    """The user's limits and today's (UTC) output tokens."""
    now = timezone.now()
    used = statements.rows(
        DailyUsage, USED, [user.pk, statements.value(DailyUsage, "day", now.date())]
    )
    tomorrow = datetime.combine(now.date() + timedelta(days=1), time.min, tzinfo=now.tzinfo)
    return Today(limits_for(user), used[0][0] if used else 0, tomorrow)


def check_quota(today: Today) -> None:
    """Refuse a new reply once the day's tokens are spent; one under the quota may finish."""
    if not today.spent:
        return
    wait = math.ceil((today.resets_at - timezone.now()).total_seconds())
    raise LimitExceeded(
        f"You have used today's {today.quota:,} output tokens; the quota renews at "
        f"midnight UTC, in {_duration(wait)}.",
        "quota_exceeded",
        wait,
    )


def count_output_tokens(user_id: int | None, tokens: int) -> None:
    """Add output tokens (a finished reply's, a title's) to the user's total for today (UTC)."""
    if not tokens or user_id is None:
        return
    day = timezone.now().date()
    if statements.execute(
        DailyUsage, ADD, [tokens, user_id, statements.value(DailyUsage, "day", day)]
    ):
        return  # one statement, as for every reply after the day's first
    added = F("output_tokens") + tokens
    try:
        with transaction.atomic():
            row, _created = DailyUsage.objects.get_or_create(user_id=user_id, day=day)
            DailyUsage.objects.filter(pk=row.pk).update(output_tokens=added)
    except IntegrityError:
        # The account was deleted while its last reply ended: its tokens are nobody's now.
        pass


def _duration(seconds: int) -> str:
    hours, minutes = seconds // 3600, math.ceil(seconds % 3600 / 60)
    if minutes == 60:
        hours, minutes = hours + 1, 0
    parts = [f"{hours} hour{'s' * (hours != 1)}"] if hours else []
    if minutes or not hours:
        parts.append(f"{minutes} minute{'s' * (minutes != 1)}")
    return " ".join(parts)
