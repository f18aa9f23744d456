"""The charts' figures: one query each, right on 100,000 messages, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import timedelta

import pytest
from django.utils import timezone

from chat import stats
from chat.models import Conversation, Message

pytestmark = pytest.mark.django_db
MODELS = ("fake", "smollm2-135m", "gpt-4o-mini")
USERS = 20
MESSAGES = 100_000


def nearest_rank(values: list[int], p: int) -> int:
    ordered = sorted(values)
    return ordered[-(-len(ordered) * p // 100) - 1]


@pytest.fixture(scope="module")
def history(django_db_setup, django_db_blocker):
    """100,000 messages over 40 days: replies (some untimed), questions, client-sent turns."""
    rng = random.Random(12)
    now = timezone.now()
    with django_db_blocker.unblock():
        from django.contrib.auth import get_user_model

        users = [get_user_model().objects.create_user(f"user{n}") for n in range(USERS)]
        chats = [Conversation.objects.create(owner=u, model="fake") for u in users]
        rows = []
        for _ in range(MESSAGES):
            chat = rng.choice(chats)
            when = now - timedelta(minutes=rng.randrange(40 * 24 * 60))
            kind = rng.random()
            if kind < 0.3:
                rows.append(Message(conversation=chat, role="user", content="q", created_at=when))
            elif kind < 0.33:  # an assistant turn a /v1 client sent along: no model
                rows.append(Message(conversation=chat, role="assistant", created_at=when))
            else:
                timed = rng.random() > 0.05
                rows.append(
                    Message(
                        conversation=chat,
                        role="assistant",
                        model=rng.choice(MODELS),
                        created_at=when,
                        ttft_ms=rng.randrange(20, 5000) if timed else None,
                        output_tokens=rng.randrange(0, 600),
                    )
                )
        Message.objects.bulk_create(rows, batch_size=5000)
    yield {"users": users, "rows": rows}
    with django_db_blocker.unblock():
        Message.objects.all().delete()
        Conversation.objects.all().delete()
        for user in users:
            user.delete()


def replies_in(rows, days: int, user=None):
    first = stats.days_back(days)[0]
    for m in rows:
        mine = user is None or m.conversation.owner_id == user.pk
        if m.role == "assistant" and m.model and m.created_at.date() >= first and mine:
            yield m


def test_replies_per_day_is_one_query_and_right(history, django_assert_num_queries):
    with django_assert_num_queries(1):
        rows = stats.replies_per_day(30)
    expected = defaultdict(lambda: [0, 0])
    for m in replies_in(history["rows"], 30):
        expected[m.created_at.date(), m.model][0] += 1
        expected[m.created_at.date(), m.model][1] += m.output_tokens
    assert {(r.day, r.model): [r.replies, r.output_tokens] for r in rows} == expected
    assert len(rows) == 30 * len(MODELS)


def test_a_users_own_tokens_per_day_is_one_query_and_only_theirs(
    history, django_assert_num_queries
):
    user = history["users"][3]
    with django_assert_num_queries(1):
        rows = stats.replies_per_day(30, user=user)
    expected = defaultdict(int)
    for m in replies_in(history["rows"], 30, user):
        expected[m.created_at.date(), m.model] += m.output_tokens
    assert {(r.day, r.model): r.output_tokens for r in rows} == expected


def test_ttft_percentiles_are_one_query_and_nearest_rank(history, django_assert_num_queries):
    with django_assert_num_queries(1):
        rows = stats.ttft_per_day(30)
    timed = defaultdict(list)
    for m in replies_in(history["rows"], 30):
        if m.ttft_ms is not None:
            timed[m.created_at.date(), m.model].append(m.ttft_ms)
    assert len(rows) == len(timed) == 30 * len(MODELS)
    for row in rows:
        values = timed[row.day, row.model]
        assert (row.p50_ms, row.p95_ms) == (nearest_rank(values, 50), nearest_rank(values, 95))


def test_top_users_is_one_query_and_ranked_by_tokens(history, django_assert_num_queries):
    with django_assert_num_queries(1):
        top = stats.top_users(30, limit=5)
    tokens = defaultdict(int)
    for m in replies_in(history["rows"], 30):
        tokens[m.conversation.owner_id] += m.output_tokens
    expected = sorted(tokens.items(), key=lambda item: -item[1])[:5]
    assert [(u["user_id"], u["tokens"]) for u in top] == expected


def test_percentiles_of_small_groups(alice):
    chat = Conversation.objects.create(owner=alice, model="fake")
    now = timezone.now()
    for ttft in (300, 100, 200):
        chat.messages.create(role="assistant", model="tiny", ttft_ms=ttft, created_at=now)
    chat.messages.create(role="assistant", model="solo", ttft_ms=42, created_at=now)
    chat.messages.create(role="assistant", model="solo", ttft_ms=None, created_at=now)
    rows = {r.model: (r.p50_ms, r.p95_ms) for r in stats.ttft_per_day(7)}
    assert (rows["tiny"], rows["solo"]) == ((200, 300), (42, 42))


def test_streaming_now_lists_replies_being_written(alice):
    chat = Conversation.objects.create(owner=alice, model="fake")
    chat.messages.create(role="assistant", model="fake", status="complete")
    live = chat.messages.create(role="assistant", model="fake", status="streaming")
    assert [m.pk for m in stats.streaming_now()] == [live.pk]
