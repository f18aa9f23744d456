"""Two web processes and a generation worker on real Redis: resume, stop and faults across them."""

from dataclasses import dataclass

import httpx
import pytest

from chat.models import ApiKey, Message
from tests.conftest import reattach, send, wait_for_status
from tests.processes import (
    REDIS_PREFIX,
    WORKER_CHANNEL,
    Process,
    environment,
    free_port,
    start_redis,
    start_web,
    start_worker,
)
from tests.sse import text_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.model]
LOCAL = "smollm2-135m"
STORY = "Write a long story about a lighthouse keeper and the sea."


@dataclass
class Cluster:
    env: dict
    worker: Process
    a: httpx.Client
    b: httpx.Client


def client(url: str, user) -> httpx.Client:
    _key, raw = ApiKey.issue(user)
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {raw}"}, timeout=30)


@pytest.fixture
def cluster(redis_url, tmp_path, alice):
    # A queue of its own: only this cluster's worker (the one the test kills) may serve it.
    env = environment(
        redis_url,
        CHAT_MAX_NEW_TOKENS=120,
        CHAT_DISCONNECT_GRACE_SECONDS=20,
        CHAT_WORKER_CHANNEL=f"{WORKER_CHANNEL}-cluster",
    )
    worker = start_worker(env, tmp_path)
    web_a, url_a = start_web(env, tmp_path, "web-a")
    web_b, url_b = start_web(env, tmp_path, "web-b")
    with client(url_a, alice) as a, client(url_b, alice) as b:
        yield Cluster(env, worker, a, b)
    for process in (web_a, web_b, worker):
        process.stop()


def local_chat(api: httpx.Client) -> int:
    return api.post("/api/conversations", json={"model": LOCAL}).json()["id"]


def test_a_reply_started_on_a_resumes_on_b_and_stops_from_a(cluster):
    with send(cluster.a, local_chat(cluster.a), STORY) as stream:
        first = [*stream.until("delta"), next(stream)]
    mid = first[0].data["message_id"]
    assert first[0].data["model"] == LOCAL
    with reattach(cluster.b, mid, first[-1].id) as rest:
        more = [next(rest)]
        assert more[0].id == f"{mid}:{len(first)}", "B did not resume right after A's last event"
        assert cluster.a.post(f"/api/messages/{mid}/stop").status_code == 202
        more += rest.all()
    assert more[-1].event == "done" and more[-1].data["status"] == "stopped"
    message = wait_for_status(mid, timeout=15)
    assert message.status == "stopped"
    assert message.content == text_of(first) + text_of(more)
    assert 0 < message.output_tokens < 120


def test_a_second_tab_on_another_process_sees_the_same_live_reply(cluster):
    with send(cluster.a, local_chat(cluster.a), "Name three colours.") as stream:
        start = next(stream)
        with reattach(cluster.b, start.data["message_id"], "") as other:
            seen_by_b = other.all()
        seen_by_a = [start, *stream.all()]
    assert seen_by_a[-1].data["status"] == "complete"
    assert text_of(seen_by_a) == text_of(seen_by_b) != ""


def test_a_killed_worker_fails_the_reply_quickly_and_keeps_its_text(cluster, tmp_path):
    with send(cluster.a, local_chat(cluster.a), STORY) as stream:
        first = stream.until("delta")
        cluster.worker.kill()
        rest = stream.all()
    # From the heartbeat's silence (SILENCE_SECONDS), not a client's time-out.
    assert rest[-1].event == "error"
    assert rest[-1].data["code"] == "worker_lost"
    message = wait_for_status(first[0].data["message_id"], timeout=15)
    assert message.status == "failed"
    assert message.content == text_of(first + rest) != ""

    replacement = start_worker(cluster.env, tmp_path, "worker-2")
    try:
        with send(cluster.b, local_chat(cluster.b), "Say hello.") as stream:
            assert stream.all()[-1].data["status"] == "complete"
    finally:
        replacement.stop()


def test_a_worker_of_another_site_on_the_same_redis_never_takes_this_sites_requests(
    redis_url, tmp_path, alice
):
    # Both sites name their worker queue alike; only CHAT_REDIS_PREFIX tells them apart.
    queue = f"{WORKER_CHANNEL}-two-sites"
    other_site = environment(
        redis_url, CHAT_REDIS_PREFIX=f"{REDIS_PREFIX}other", CHAT_WORKER_CHANNEL=queue
    )
    this_site = environment(
        redis_url, CHAT_WORKER_CHANNEL=queue, CHAT_WORKER_QUEUE_TIMEOUT_SECONDS=5
    )
    other_worker = start_worker(other_site, tmp_path, "other-sites-worker")
    web, url = start_web(this_site, tmp_path, "web")
    own_worker = None
    try:
        with client(url, alice) as api:
            with send(api, local_chat(api), "Say hello.") as stream:
                unserved = stream.all()[-1]
            assert unserved.event == "error" and unserved.data["code"] == "no_worker"

            own_worker = start_worker(this_site, tmp_path, "own-worker")
            with send(api, local_chat(api), "Say hello.") as stream:
                assert stream.all()[-1].data["status"] == "complete"
    finally:
        for process in (web, other_worker, own_worker):
            if process:
                process.stop()


def test_without_redis_it_answers_503_stays_up_and_recovers(tmp_path, alice, redis_url):
    port = free_port()
    own_redis = start_redis(port)
    env = environment(f"redis://127.0.0.1:{port}/0")
    web, url = start_web(env, tmp_path, "web")
    try:
        with client(url, alice) as api:
            conversation = api.post("/api/conversations", json={"model": "fake"}).json()["id"]
            own_redis.kill()
            own_redis.wait()
            refused = api.post(
                f"/api/conversations/{conversation}/messages", json={"content": "hi"}
            )
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "service_unavailable"
            assert not Message.objects.exists(), "a refused message was half stored"
            assert api.get("/api/conversations").status_code == 200

            own_redis = start_redis(port)
            with send(api, conversation, "hi again") as stream:
                assert stream.all()[-1].data["status"] == "complete"
    finally:
        own_redis.kill()
        web.stop()
