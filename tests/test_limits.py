"""Per-user limits through every door, against the live server, as an ordinary user meets them."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

import httpx
import openai
import pytest
from django.test import Client

from chat.limits.quota import limits_for
from chat.models import Conversation, DailyUsage, Message, UserLimits
from tests.conftest import send, wait_for_status
from tests.sse import text_of
from tests.test_titles import once_titled
from tests.test_websocket import connect, receive_until_end

pytestmark = pytest.mark.django_db(transaction=True)
HI = {"content": "Hi"}


def conversations(owner, count: int) -> list[int]:
    """New conversations with titles of the user's own: the model writes no title for them."""
    fields = {"owner": owner, "model": "fake", "title": "Mine", "title_source": "user"}
    return [Conversation.objects.create(**fields).pk for _ in range(count)]


def send_at_once(api: httpx.Client, conversation_ids: list[int]) -> list[httpx.Response]:
    """POST a message to each conversation, all at the same moment; the answers' heads."""

    async def one(client: httpx.AsyncClient, conversation_id: int) -> httpx.Response:
        path = f"/api/conversations/{conversation_id}/messages"
        async with client.stream("POST", path, json={"content": "Hello"}) as response:
            if response.status_code != 200:
                await response.aread()  # an error body; a stream is left at once
            return response

    async def everyone() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=len(conversation_ids))
        async with httpx.AsyncClient(
            base_url=api.base_url, headers=api.headers, timeout=30, limits=limits
        ) as client:
            return await asyncio.gather(*(one(client, cid) for cid in conversation_ids))

    return asyncio.run(everyone())


def refusal(response: httpx.Response) -> tuple[str, int]:
    """The 429's code and Retry-After, checked for API.md's shape on the way."""
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    retry_after = int(response.headers["Retry-After"])
    assert error["retry_after"] == retry_after >= 1
    assert error["message"]
    return error["code"], retry_after


def seconds_to_utc_midnight() -> float:
    now = datetime.now(UTC)
    return (datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1) - now).seconds


def stored_user_messages() -> int:
    return Message.objects.filter(role="user").count()


def test_it_starts_exactly_the_replies_per_minute_of_forty_simultaneous_sends(api, alice, settings):
    settings.CHAT_USER_REPLIES_PER_MINUTE = 10
    settings.CHAT_USER_MAX_CONCURRENT_REPLIES = 40
    settings.CHAT_DISCONNECT_GRACE_SECONDS = 0

    answers = send_at_once(api, conversations(alice, 40))

    assert sorted(r.status_code for r in answers).count(200) == 10
    refusals = [refusal(r) for r in answers if r.status_code != 200]
    assert len(refusals) == 30
    assert {code for code, _ in refusals} == {"rate_limited"}
    assert all(retry_after <= 60 for _, retry_after in refusals)
    assert stored_user_messages() == 10, "a refused send stored something"


def test_it_starts_exactly_the_concurrent_replies_of_forty_simultaneous_sends(api, alice, settings):
    settings.CHAT_USER_MAX_CONCURRENT_REPLIES = 3
    settings.CHAT_FAKE_TOKENS_PER_SECOND = 5  # they are all still running when the last arrives

    answers = send_at_once(api, conversations(alice, 40))

    assert [r.status_code for r in answers].count(200) == 3
    assert {refusal(r)[0] for r in answers if r.status_code != 200} == {"too_many_replies"}
    assert stored_user_messages() == 3


def finish_by_completing(api, stream, mid):
    return stream.all()


def finish_by_failing(api, stream, mid):
    return stream.all()


def finish_by_stopping(api, stream, mid):
    assert api.post(f"/api/messages/{mid}/stop").status_code == 202
    return stream.all()


def finish_by_leaving(api, stream, mid):
    stream.close()  # with no grace period the reply is abandoned at once
    wait_for_status(mid)
    return []


@pytest.mark.parametrize(
    "content, finish, status",
    [
        ("Hello", finish_by_completing, "complete"),
        ("fail now", finish_by_failing, "failed"),
        ("Hello", finish_by_stopping, "stopped"),
        ("Hello", finish_by_leaving, "stopped"),
    ],
)
def test_a_replys_slot_comes_back_however_it_ends(api, alice, settings, content, finish, status):
    settings.CHAT_USER_MAX_CONCURRENT_REPLIES = 1
    settings.CHAT_DISCONNECT_GRACE_SECONDS = 0
    settings.CHAT_FAKE_TOKENS_PER_SECOND = 10
    first, second = conversations(alice, 2)
    with send(api, first, content) as stream:
        mid = next(stream).data["message_id"]
        assert refusal(api.post(f"/api/conversations/{second}/messages", json={"content": "Hi"}))[
            0
        ] == ("too_many_replies")
        finish(api, stream, mid)
    assert wait_for_status(mid).status == status
    # Given back when the reply ends, not when its slot would expire (15 s later).
    deadline = time.monotonic() + 5
    while (answer := send(api, second, "Hi")).response.status_code == 429:
        answer.close()
        assert time.monotonic() < deadline, "the slot never came back"
        time.sleep(0.05)
    with answer:
        assert answer.all()[-1].data["status"] == "complete"


def test_a_send_refused_for_another_reason_does_not_use_up_a_start(api, alice, settings):
    settings.CHAT_USER_REPLIES_PER_MINUTE = 2
    settings.CHAT_FAKE_TOKENS_PER_SECOND = 10
    busy, other, third = conversations(alice, 3)
    with send(api, busy, "Hello") as running:
        next(running)
        conflict = api.post(f"/api/conversations/{busy}/messages", json={"content": "again"})
        assert conflict.status_code == 409
        with send(api, other, "Hello") as second:
            assert second.response.status_code == 200
            late = api.post(f"/api/conversations/{third}/messages", json={"content": "Hi"})
            assert refusal(late)[0] == "rate_limited"


def test_a_reply_started_under_the_quota_finishes_and_its_tokens_count(api, alice, settings):
    settings.CHAT_USER_OUTPUT_TOKENS_PER_DAY = 10
    chat = conversations(alice, 1)[0]
    with send(api, chat, "Hello") as stream:
        events = stream.all()
    assert events[-1].data["status"] == "complete"
    assert events[-1].data["output_tokens"] == 40, "a reply under the quota is not cut short"
    assert DailyUsage.objects.get(user=alice).output_tokens == 40

    answer = api.post(f"/api/conversations/{chat}/messages", json={"content": "More"})
    code, retry_after = refusal(answer)
    assert code == "quota_exceeded"
    assert abs(retry_after - seconds_to_utc_midnight()) <= 5
    assert "midnight UTC" in answer.json()["error"]["message"]
    assert stored_user_messages() == 1


def test_the_tokens_of_a_title_the_model_writes_count_too(api, alice, settings):
    settings.CHAT_USER_OUTPUT_TOKENS_PER_DAY = 1000
    chat = api.post("/api/conversations", json={"model": "fake"}).json()["id"]
    with send(api, chat, "echo Otters and their habits") as stream:
        reply = stream.all()[-1].data["output_tokens"]
    titled = once_titled(chat)
    assert titled.title_tokens > 0
    assert DailyUsage.objects.get(user=alice).output_tokens == reply + titled.title_tokens


def test_imported_messages_never_count_toward_the_quota(api, alice, settings):
    settings.CHAT_USER_OUTPUT_TOKENS_PER_DAY = 50
    chat = conversations(alice, 1)[0]
    with send(api, chat, "Hello") as stream:
        assert stream.all()[-1].data["output_tokens"] == 40
    exported = api.get("/api/export").content
    for _ in range(3):
        assert api.post("/api/import", content=exported).status_code == 201
    assert DailyUsage.objects.get(user=alice).output_tokens == 40
    with send(api, chat, "Hello") as stream:
        assert stream.all()[-1].data["status"] == "complete"
    assert refusal(api.post(f"/api/conversations/{chat}/messages", json={"content": "x"}))[0] == (
        "quota_exceeded"
    )


def test_deleting_conversations_does_not_give_the_days_tokens_back(api, alice, settings):
    settings.CHAT_USER_OUTPUT_TOKENS_PER_DAY = 40
    chat = conversations(alice, 1)[0]
    with send(api, chat, "Hello") as stream:
        stream.all()
    assert api.delete(f"/api/conversations/{chat}").status_code == 204
    fresh = conversations(alice, 1)[0]
    answer = api.post(f"/api/conversations/{fresh}/messages", json={"content": "Hi"})
    assert refusal(answer)[0] == "quota_exceeded"


def test_a_users_own_limits_win_over_the_sites(api, bob_api, alice, bob, settings):
    settings.CHAT_USER_OUTPUT_TOKENS_PER_DAY = 1
    UserLimits.objects.create(user=alice, replies_per_minute=2, output_tokens_per_day=0)
    UserLimits.objects.create(user=bob, max_concurrent_replies=None)  # blank: the site's
    # alice has no quota of her own (0): her second reply starts past the site's quota.
    for chat in conversations(alice, 2):
        with send(api, chat, "Hello") as stream:
            assert stream.all()[-1].data["status"] == "complete"
    assert DailyUsage.objects.get(user=alice).output_tokens == 80
    late = api.post(f"/api/conversations/{conversations(alice, 1)[0]}/messages", json=HI)
    assert refusal(late)[0] == "rate_limited", "alice's own limit of two a minute"
    # bob has the site's quota of one token: his first reply spends it.
    with send(bob_api, conversations(bob, 1)[0], "Hello") as stream:
        assert stream.all()[-1].data["status"] == "complete"
    late = bob_api.post(f"/api/conversations/{conversations(bob, 1)[0]}/messages", json=HI)
    assert refusal(late)[0] == "quota_exceeded"


async def test_the_websocket_refuses_with_the_same_codes_and_when_to_retry(
    live_server_url, alice, settings
):
    settings.CHAT_USER_REPLIES_PER_MINUTE = 1
    client = Client()
    await asyncio.to_thread(client.force_login, alice)
    cookie = client.cookies["sessionid"].value
    chats = await asyncio.to_thread(conversations, alice, 2)
    async with connect(live_server_url, chats[0], cookie) as ws:
        await ws.send(json.dumps({"type": "send", "content": "Hello"}))
        assert (await receive_until_end(ws))[-1]["type"] == "done"
    async with connect(live_server_url, chats[1], cookie) as ws:
        await ws.send(json.dumps({"type": "send", "content": "Hello"}))
        [refused] = await receive_until_end(ws)
    assert refused["type"] == "error" and refused["code"] == "rate_limited"
    assert 1 <= refused["retry_after"] <= 60 and "message_id" not in refused
    assert await asyncio.to_thread(stored_user_messages) == 1


def test_v1_refusals_are_openais_429s_that_the_official_client_raises(
    openai_client, alice, settings
):
    settings.CHAT_USER_REPLIES_PER_MINUTE = 1
    hello = [{"role": "user", "content": "Hello"}]
    openai_client.chat.completions.create(model="fake", messages=hello)
    with pytest.raises(openai.RateLimitError) as raised:
        openai_client.chat.completions.create(model="fake", messages=hello)
    error = raised.value
    assert error.status_code == 429 and error.code == "rate_limit_exceeded"
    assert error.body["type"] == "requests"
    assert 1 <= int(error.response.headers["retry-after"]) <= 60
    assert Conversation.objects.count() == 1, "the refused chat was stored"


def test_v1_says_insufficient_quota_when_the_days_tokens_are_spent(openai_client, settings):
    settings.CHAT_USER_OUTPUT_TOKENS_PER_DAY = 1
    hello = [{"role": "user", "content": "Hello"}]
    openai_client.chat.completions.create(model="fake", messages=hello)
    with pytest.raises(openai.RateLimitError) as raised:
        openai_client.chat.completions.create(model="fake", messages=hello, stream=True)
    error = raised.value
    assert (error.code, error.body["type"]) == ("insufficient_quota", "insufficient_quota")
    # Hours away: the SDK is told not to retry on its own.
    assert error.response.headers["x-should-retry"] == "false"
    assert Conversation.objects.count() == 1


def test_v1_max_tokens_above_the_cap_is_lowered_to_it(openai_client, settings):
    settings.CHAT_MAX_NEW_TOKENS = 5
    completion = openai_client.chat.completions.create(
        model="fake", messages=[{"role": "user", "content": "Hello"}], max_tokens=10**9
    )
    assert completion.usage.completion_tokens == 5
    assert completion.choices[0].finish_reason == "length"
    assert Message.objects.get(role="assistant").output_tokens == 5


def test_the_chat_path_sends_the_cap_though_it_asks_for_no_length(api, alice, settings):
    settings.CHAT_MAX_NEW_TOKENS = 5
    with send(api, conversations(alice, 1)[0], "echo " + "many words " * 40) as stream:
        events = stream.all()
    assert events[-1].data["output_tokens"] == 5
    assert len(text_of(events)) == 5 * 4


def test_the_account_page_shows_todays_tokens_against_the_quota(alice, settings):
    settings.CHAT_USER_OUTPUT_TOKENS_PER_DAY = 1000
    DailyUsage.objects.create(user=alice, day=datetime.now(UTC).date(), output_tokens=250)
    DailyUsage.objects.create(
        user=alice, day=datetime.now(UTC).date() - timedelta(days=1), output_tokens=900
    )
    browser = Client()
    browser.force_login(alice)
    page = browser.get("/account/").content.decode()
    assert 'min="0" max="1000"' in page and 'value="250"' in page
    assert "250 of 1000 tokens used" in page
    assert " style=" not in page, "the CSP forbids inline styles"


def test_the_account_page_says_when_the_quota_is_spent_or_there_is_none(alice, settings):
    settings.CHAT_USER_OUTPUT_TOKENS_PER_DAY = 100
    DailyUsage.objects.create(user=alice, day=datetime.now(UTC).date(), output_tokens=120)
    browser = Client()
    browser.force_login(alice)
    assert "Today's tokens are spent" in browser.get("/account/").content.decode()
    settings.CHAT_USER_OUTPUT_TOKENS_PER_DAY = 0
    page = browser.get("/account/").content.decode()
    assert "120 output tokens used today (UTC); there is no daily quota" in page
    assert "<meter" not in page


def user_form(alice, **limits) -> dict:
    """The admin's change form for alice, with her limits inline."""
    fields = {
        "username": alice.username,
        "is_active": "on",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "09:00:00",
        "limits-TOTAL_FORMS": "1",
        "limits-INITIAL_FORMS": "0",
        "limits-MIN_NUM_FORMS": "0",
        "limits-MAX_NUM_FORMS": "1",
        "limits-0-user": str(alice.pk),
    }
    return fields | {f"limits-0-{name}": str(value) for name, value in limits.items()}


def test_staff_set_a_users_own_limits_in_the_admin(admin_client, alice, settings):
    settings.CHAT_USER_REPLIES_PER_MINUTE = 20
    url = f"/admin/auth/user/{alice.pk}/change/"
    assert "Blank: the site's, 20." in admin_client.get(url).content.decode()

    refused = admin_client.post(url, user_form(alice, replies_per_minute=0))
    assert refused.status_code == 200 and not UserLimits.objects.exists()

    saved = admin_client.post(url, user_form(alice, replies_per_minute=5))
    assert saved.status_code == 302
    own = UserLimits.objects.get(user=alice)
    assert (own.max_concurrent_replies, own.replies_per_minute, own.output_tokens_per_day) == (
        None,
        5,
        None,
    )
    effective = limits_for(alice)
    assert (effective.replies_per_minute, effective.max_concurrent_replies) == (5, 1000)


def test_only_staff_reach_the_limits(client, alice):
    client.force_login(alice)
    assert client.get(f"/admin/auth/user/{alice.pk}/change/").status_code == 302
