"""Charts in headless Chromium: the account page's and the staff dashboard's draw something,
with no CSP violation (the `context` fixture fails on any); screenshots at 1280 and 375 px."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from chat.models import Conversation, Message
from tests.browser.conftest import ARTIFACTS, PASSWORD

pytestmark = pytest.mark.browser
NARROW = {"width": 375, "height": 812}


def replies_over_days(owner, models=("fake", "smollm2-135m"), days: int = 10) -> None:
    """A reply a model a day, for `days` days, with tokens and times to first token."""
    conversation = Conversation.objects.create(owner=owner, model=models[0], title="History")
    now = timezone.now()
    Message.objects.bulk_create(
        Message(
            conversation=conversation,
            role="assistant",
            content="reply",
            model=model,
            output_tokens=20 + 7 * day + 30 * m,
            ttft_ms=80 + 10 * day + 50 * m,
            created_at=now - timedelta(days=day),
        )
        for day in range(days)
        for m, model in enumerate(models)
    )


def sign_in(page, username: str) -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/")


def drawn_shapes(page, chart_id: str) -> int:
    """How many bars, dots and lines of the chart have a visible size on screen."""
    return page.evaluate(
        """(id) => [...document.querySelectorAll(`#${id} svg rect, #${id} svg path`)]
            .filter((shape) => { const box = shape.getBoundingClientRect();
                                 return box.width > 0 && box.height > 0; }).length""",
        chart_id,
    )


def fits_the_width(page) -> bool:
    return page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / name, full_page=True)


def test_it_draws_the_account_chart_at_1280_and_375_px(page, alice):
    replies_over_days(alice)
    sign_in(page, "alice")
    page.goto("/account/")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    assert drawn_shapes(page, "my-tokens-chart") == 20
    expect(page.locator("#my-tokens-chart .chart-legend")).to_contain_text("smollm2-135m")
    screenshot(page, "account-1280.png")

    page.set_viewport_size(NARROW)
    page.reload()
    assert drawn_shapes(page, "my-tokens-chart") == 20
    assert fits_the_width(page), "the account page scrolls sideways at 375 px"
    screenshot(page, "account-375.png")


def test_it_follows_the_systems_dark_theme(page, alice):
    replies_over_days(alice, days=3)
    page.emulate_media(color_scheme="dark")
    sign_in(page, "alice")
    page.goto("/account/")
    background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    bar = page.locator("#my-tokens-chart rect").first.evaluate("(r) => getComputedStyle(r).fill")
    assert background == "rgb(31, 31, 36)"  # site.css's dark --panel
    assert bar == "rgb(139, 133, 255)"  # the first series in the dark palette
    screenshot(page, "account-1280-dark.png")


def test_a_new_user_sees_an_empty_chart_not_a_broken_one(page, alice):
    sign_in(page, "alice")
    page.goto("/account/")
    expect(page.locator("#my-tokens-chart")).to_contain_text("Nothing in this period yet.")


def test_the_staff_dashboard_draws_every_chart(page, alice, bob, django_user_model):
    django_user_model.objects.create_superuser("root", password=PASSWORD)
    replies_over_days(alice)
    replies_over_days(bob, models=("fake",), days=4)
    live = Conversation.objects.create(owner=bob, model="fake", title="Live one")
    live.messages.create(role="assistant", model="fake", status="streaming", content="Once upon")
    sign_in(page, "root")
    page.goto("/admin/dashboard/")
    expect(page.get_by_role("heading", name="Streaming now: 1")).to_be_visible()
    expect(page.locator("table.streaming")).to_contain_text("Live one")
    # One bar a model a day: bob's fake replies (and the live one) add to alice's.
    assert drawn_shapes(page, "replies-chart") == 20
    assert drawn_shapes(page, "tokens-chart") == 20
    today = timezone.now().date().isoformat()
    titles = page.locator("#replies-chart rect title").all_text_contents()
    assert f"{today} · fake: 3 replies" in titles
    assert drawn_shapes(page, "ttft-chart") == 4  # p50 and p95 of two models
    assert drawn_shapes(page, "top-users-chart") == 2
    expect(page.locator("#top-users-chart svg")).to_contain_text("alice")
    screenshot(page, "dashboard-1280.png")

    page.get_by_role("link", name="7 days").click()
    expect(page.locator(".periods [aria-current=page]")).to_have_text("7 days")
    assert drawn_shapes(page, "replies-chart") == 7 * 2

    page.set_viewport_size(NARROW)
    page.reload()
    assert drawn_shapes(page, "ttft-chart") == 4
    screenshot(page, "dashboard-375.png")
