"""The staff dashboard and the account page's chart: who may see them, what they draw."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from chat import charts
from chat.models import Conversation

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def reply(owner, model: str, tokens: int, ttft: int = 100, days_ago: int = 0):
    chat = Conversation.objects.create(owner=owner, model=model)
    when = timezone.now() - timedelta(days=days_ago)
    return chat.messages.create(
        role="assistant", model=model, output_tokens=tokens, ttft_ms=ttft, created_at=when
    )


@pytest.fixture
def staff(django_user_model):
    user = django_user_model.objects.create_user("staff", password="x", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_conversation"))
    return user


def test_it_is_for_staff_only(client, alice, django_user_model):
    assert client.get("/admin/dashboard/").url.startswith("/admin/login/")
    assert signed_in(alice).get("/admin/dashboard/").url.startswith("/admin/login/")
    no_rights = django_user_model.objects.create_user("clerk", is_staff=True)
    assert signed_in(no_rights).get("/admin/dashboard/").status_code == 403


def test_it_draws_every_chart_in_a_few_queries(staff, alice, bob, django_assert_max_num_queries):
    for n in range(30):
        reply(alice, "fake", 10 + n, ttft=50 + n, days_ago=n % 9)
        reply(bob, "smollm2-135m", 5, ttft=300, days_ago=n % 5)
    streaming = reply(bob, "fake", 0)
    streaming.status = "streaming"
    streaming.save()
    client = signed_in(staff)
    with django_assert_max_num_queries(10):
        response = client.get("/admin/dashboard/")
    page = response.content.decode()
    assert response.status_code == 200
    for chart in ("replies-chart", "tokens-chart", "ttft-chart", "top-users-chart"):
        assert f'id="{chart}"' in page
    assert page.count("<rect ") >= 9 + 5 + 2
    assert "Streaming now: 1" in page
    assert "<script>" not in page and " style=" not in page


def test_it_takes_a_period_and_ignores_a_bad_one(staff):
    client = signed_in(staff)
    assert client.get("/admin/dashboard/?days=7").context["days"] == 7
    for bad in ["8", "x", "-1", "1e9"]:
        response = client.get(f"/admin/dashboard/?days={bad}")
        assert response.status_code == 200 and response.context["days"] == 30


def test_the_account_chart_shows_only_ones_own_tokens(alice, bob):
    reply(alice, "fake", 33)
    reply(bob, "bobs-secret-model", 999)
    page = signed_in(alice).get("/account/").content.decode()
    assert 'id="my-tokens-chart"' in page and "<rect " in page
    assert "bobs-secret-model" not in page and "999" not in page


def test_the_admin_wears_the_sites_look(staff):
    page = signed_in(staff).get("/admin/").content.decode()
    assert "chat/site.css" in page and "chat/admin.css" in page
    assert "admin/css/dark_mode.css" not in page  # dark mode follows the system, like the site
    assert 'href="/admin/dashboard/"' in page


@pytest.mark.parametrize(
    "value, top", [(0, 4), (3, 4), (4, 4), (5, 8), (9, 20), (1330, 2000), (0.3, 4)]
)
def test_axes_end_on_round_numbers(value, top):
    assert charts.nice_top(value) == top


def test_stacked_bars_are_as_tall_as_their_values():
    day = date(2026, 3, 1)
    chart = charts.stacked_bars("c", "t", [day], {"a": {day: 1}, "b": {day: 3}}, "tokens")
    low, high = chart.rects
    assert high.height == pytest.approx(3 * low.height)
    assert low.y == pytest.approx(high.y + high.height)  # stacked: b sits on a
    assert chart.table == [["2026-03-01", 1, 3]]


def test_an_empty_period_is_an_empty_chart():
    days = [date(2026, 3, 1), date(2026, 3, 2)]
    assert charts.stacked_bars("c", "t", days, {}).empty
    assert charts.day_lines("c", "t", days, {}).empty
    assert charts.ranked_bars("c", "t", []).empty
