"""The limits across two live web processes sharing Redis: exact, and slots of the dead expire."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from chat.limits.backend import SLOT_TTL_SECONDS
from chat.models import ApiKey, Conversation, Message, UserLimits
from tests.processes import Process, environment, start_web
from tests.sse import EventStream

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class Web:
    process: Process
    url: str


@dataclass
class Webs:
    env: dict
    logs: Path
    a: Web
    b: Web

    def __getitem__(self, index: int) -> Web:
        return (self.a, self.b)[index]


@pytest.fixture(scope="module")
def webs(django_db_setup, redis_url, tmp_path_factory):
    """Two web processes on one Redis, with the fake model writing 4 tokens a second.

    Each test's user has limits of their own (UserLimits), read from the shared database.
    """
    tmp_path = tmp_path_factory.mktemp("webs")
    env = environment(
        redis_url,
        CHAT_LOCAL_ENABLED="false",
        CHAT_DEFAULT_MODEL="fake",
        CHAT_FAKE_TOKENS_PER_SECOND=4,
        CHAT_FAKE_TOKENS=40,
    )
    started = [Web(*start_web(env, tmp_path, name)) for name in ("web-a", "web-b")]
    yield Webs(env, tmp_path, *started)
    for web in started:
        web.process.stop()


@pytest.fixture
def carol(django_user_model):
    return django_user_model.objects.create_user("carol", password="a third good password")


def key_of(user) -> dict:
    _key, raw = ApiKey.issue(user)
    return {"Authorization": f"Bearer {raw}"}


def chats(owner, count: int) -> list[int]:
    fields = {"owner": owner, "model": "fake", "title": "Mine", "title_source": "user"}
    return [Conversation.objects.create(**fields).pk for _ in range(count)]


def send_at_once(sends: list[tuple[str, int]], headers: dict) -> list[int]:
    """POST a message to each (server, conversation) at the same moment; the statuses."""

    async def one(client: httpx.AsyncClient, url: str, conversation_id: int) -> int:
        path = f"{url}/api/conversations/{conversation_id}/messages"
        async with client.stream("POST", path, json={"content": "Hello"}) as response:
            return response.status_code

    async def everyone() -> list[int]:
        limits = httpx.Limits(max_connections=len(sends))
        async with httpx.AsyncClient(headers=headers, timeout=30, limits=limits) as client:
            return await asyncio.gather(*(one(client, url, cid) for url, cid in sends))

    return asyncio.run(everyone())


def test_forty_sends_across_two_processes_start_exactly_ten_a_minute(webs, carol):
    UserLimits.objects.create(user=carol, replies_per_minute=10, max_concurrent_replies=40)
    sends = [(webs[i % 2].url, cid) for i, cid in enumerate(chats(carol, 40))]

    statuses = send_at_once(sends, key_of(carol))

    assert statuses.count(200) == 10 and statuses.count(429) == 30, statuses
    assert Message.objects.filter(role="user").count() == 10


def test_forty_sends_across_two_processes_run_exactly_three_at_once(webs, carol):
    UserLimits.objects.create(user=carol, replies_per_minute=100, max_concurrent_replies=3)
    sends = [(webs[i % 2].url, cid) for i, cid in enumerate(chats(carol, 40))]

    statuses = send_at_once(sends, key_of(carol))

    assert statuses.count(200) == 3 and statuses.count(429) == 37, statuses
    assert Message.objects.filter(role="user").count() == 3


def open_reply(url: str, headers: dict, conversation_id: int) -> EventStream:
    client = httpx.Client(base_url=url, headers=headers, timeout=30)
    request = client.build_request(
        "POST", f"/api/conversations/{conversation_id}/messages", json={"content": "Hello"}
    )
    stream = EventStream(client.send(request, stream=True))
    assert stream.response.status_code == 200
    assert next(stream).event == "start"
    return stream


def status_on(url: str, headers: dict, conversation_id: int) -> httpx.Response:
    path = f"{url}/api/conversations/{conversation_id}/messages"
    with httpx.stream("POST", path, headers=headers, json={"content": "Hi"}, timeout=30) as answer:
        if answer.status_code != 200:
            answer.read()  # the error; a reply's stream is left at once
        return answer


def test_a_slot_ended_on_one_process_is_free_on_the_other_at_once(webs, carol):
    UserLimits.objects.create(user=carol, max_concurrent_replies=1)
    headers, (first, second) = key_of(carol), chats(carol, 2)
    with open_reply(webs[0].url, headers, first) as stream:
        assert status_on(webs[1].url, headers, second).status_code == 429
        assert stream.all()[-1].data["status"] == "complete"
    assert status_on(webs[1].url, headers, second).status_code == 200


def test_the_slots_of_a_killed_process_expire(webs, carol):
    UserLimits.objects.create(user=carol, max_concurrent_replies=2)
    headers, chat_ids = key_of(carol), chats(carol, 3)
    doomed = Web(*start_web(webs.env, webs.logs, "web-doomed"))
    streams = [open_reply(doomed.url, headers, cid) for cid in chat_ids[:2]]
    doomed.process.kill()
    killed = time.monotonic()
    for stream in streams:
        stream.close()
    refused = status_on(webs[1].url, headers, chat_ids[2])
    assert refused.json()["error"]["code"] == "too_many_replies"

    while (answer := status_on(webs[1].url, headers, chat_ids[2])).status_code == 429:
        assert time.monotonic() - killed < SLOT_TTL_SECONDS + 15, "the dead slots never expired"
        time.sleep(0.25)
    assert answer.status_code == 200
