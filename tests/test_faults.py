"""Faults across real web processes on real Redis: a killed owner, stops and listeners
from other processes, Redis restarting mid-reply. The fake model, so no worker is needed."""

import asyncio
import subprocess
import threading
from dataclasses import dataclass

import httpx
import pytest
import redis

from chat import db
from chat.models import ApiKey, Conversation, Message
from tests.conftest import reattach, send, wait_for_status, wait_until
from tests.processes import REDIS_PREFIX, Process, environment, free_port, start_web
from tests.sse import text_of

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class Pair:
    web_a: Process
    a: httpx.Client
    b: httpx.Client


def client(url: str, user, timeout: float = 30) -> httpx.Client:
    _key, raw = ApiKey.issue(user)
    headers = {"Authorization": f"Bearer {raw}"}
    return httpx.Client(base_url=url, headers=headers, timeout=timeout)


def start_pair(redis_url: str, log_dir, alice, **settings) -> tuple[list[Process], Pair]:
    env = environment(redis_url, CHAT_FAKE_TOKENS_PER_SECOND=5, CHAT_FAKE_TOKENS=40, **settings)
    web_a, url_a = start_web(env, log_dir, "web-a")
    web_b, url_b = start_web(env, log_dir, "web-b")
    # B's reads time out after 10 s without an event: that is the bound on noticing a death.
    return [web_a, web_b], Pair(web_a, client(url_a, alice), client(url_b, alice, timeout=10))


@pytest.fixture
def pair(redis_url, tmp_path, alice):
    processes, pair = start_pair(redis_url, tmp_path, alice, CHAT_DISCONNECT_GRACE_SECONDS=1)
    yield pair
    for process in processes:
        process.stop()


def new_chat(api: httpx.Client) -> int:
    return api.post("/api/conversations", json={"model": "fake"}).json()["id"]


def test_followers_elsewhere_get_interrupted_when_the_owner_is_killed(pair):
    with send(pair.a, new_chat(pair.a), "Hello") as stream:
        first = stream.until("delta")
        mid = first[0].data["message_id"]
        with reattach(pair.b, mid, first[-1].id) as follower:
            wait_until(lambda: Message.objects.get(pk=mid).content, what="a checkpoint")
            pair.web_a.kill()
            rest = follower.all()
    assert rest[-1].event == "error"
    assert rest[-1].data["code"] == "interrupted"
    message = wait_for_status(mid)
    assert message.status == "failed" and message.error_code == "interrupted"
    assert message.content != ""
    assert (text_of(first) + text_of(rest)).startswith(message.content)


def test_a_stop_sent_to_a_process_that_does_not_own_the_reply_lands(pair):
    with send(pair.a, new_chat(pair.a), "Hello") as stream:
        mid = stream.until("delta")[0].data["message_id"]
        answer = pair.b.post(f"/api/messages/{mid}/stop")
        assert (answer.status_code, answer.json()["stopping"]) == (202, True)
        assert stream.all()[-1].data["status"] == "stopped"
    assert wait_for_status(mid).status == "stopped"


def test_the_grace_period_counts_listeners_on_other_processes(pair):
    # Once B listens, the starting request leaves: B's listener alone keeps the reply
    # going, through several seconds of a one-second grace period.
    with send(pair.a, new_chat(pair.a), "Hello") as stream:
        first = stream.until("delta")
        mid = first[0].data["message_id"]
        follower = reattach(pair.b, mid, first[-1].id)
        rest = [next(follower)]
    with follower:
        rest += follower.all()
    assert rest[-1].data["status"] == "complete"
    assert text_of(first) + text_of(rest) == wait_for_status(mid).content


def test_when_redis_restarts_mid_reply_every_follower_gets_an_end(tmp_path, alice):
    port = free_port()
    server = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"]
    redis_server = subprocess.Popen(server, stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    wait_until(lambda: _answers(url), what="the private Redis")
    processes, pair = start_pair(url, tmp_path, alice)
    try:
        with send(pair.a, new_chat(pair.a), "Hello") as stream:
            first = stream.until("delta")
            mid = first[0].data["message_id"]
            with reattach(pair.b, mid, first[-1].id) as follower:
                next(follower)
                redis_server.kill()
                redis_server.wait()
                redis_server = subprocess.Popen(server, stdout=subprocess.DEVNULL)
                ends = [follower.all()[-1], stream.all()[-1]]
        assert [end.event in ("done", "error") for end in ends] == [True, True]
        assert wait_for_status(mid, timeout=30).status == "complete"
    finally:
        redis_server.kill()
        for process in processes:
            process.stop()


def _answers(url: str) -> bool:
    import redis

    try:
        return redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.ConnectionError:
        return False


def test_a_writer_back_from_a_stall_leaves_a_reply_ended_as_interrupted_as_it_is(
    transactional_db, alice
):
    conversation = Conversation.objects.create(owner=alice, model="fake")
    reply = Message.objects.create(conversation=conversation, role="assistant", status="streaming")

    async def stall_then_finish():
        # A reader found no writer and ended the reply with the text its followers saw...
        await db.fail_interrupted([reply.id], content="Hal")
        # ...then the writer, alive after all, saves what it has.
        await db.finish_reply(reply.id, status="complete", content="Hallo")

    asyncio.run(stall_then_finish())
    reply.refresh_from_db()
    assert (reply.status, reply.content) == ("failed", "Hal")


def test_a_reply_is_never_taken_for_an_orphan_by_the_process_writing_it(redis_url, tmp_path, alice):
    # A process whose loop falls seconds behind (a burst of starts) lets its leases lapse
    # while it writes on: its own readers must not end the reply as interrupted.
    env = environment(redis_url, CHAT_FAKE_TOKENS_PER_SECOND=0.4, CHAT_FAKE_TOKENS=4)
    web, url = start_web(env, tmp_path, "web")
    lapsing = threading.Event()
    try:
        with client(url, alice) as api, send(api, new_chat(api), "Hello") as stream:
            first = stream.until("delta")
            owner = f"{REDIS_PREFIX}:run:{first[0].data['message_id']}:owner"
            threading.Thread(target=keep_deleting, args=(redis_url, owner, lapsing)).start()
            rest = stream.all()
    finally:
        lapsing.set()
        web.stop()
    assert rest[-1].event == "done" and rest[-1].data["status"] == "complete"
    assert text_of(first + rest) == Message.objects.get(pk=first[0].data["message_id"]).content


def keep_deleting(url: str, key: str, until: threading.Event) -> None:
    """Delete `key` as often as it is set again: a lease whose renewals never land."""
    with redis.Redis.from_url(url) as server:
        while not until.wait(0.01):
            server.delete(key)
