"""Several web processes behind one port (`uvicorn --workers 2`), sharing real Redis."""

import time
from contextlib import closing

import httpx
import pytest

from chat.models import ApiKey
from tests.conftest import reattach, send, wait_for_status
from tests.processes import Process, environment, serving_process, start_web
from tests.sse import text_of

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def web(redis_url, tmp_path):
    # A reply of 20 s at the fake model's pace: it is still being written when stopped.
    env = environment(redis_url, CHAT_FAKE_TOKENS_PER_SECOND=20, CHAT_FAKE_TOKENS=400)
    # Connections kept open long enough that each request below stays on its process.
    server, url = start_web(env, tmp_path, "web", "--workers", "2", "--timeout-keep-alive", "120")
    yield server, url
    server.stop()


@pytest.fixture
def key(alice) -> str:
    return ApiKey.issue(alice)[1]


def connection(url: str, key: str) -> httpx.Client:
    """A client that keeps its one connection, so that its requests go to one process."""
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.Client(
        base_url=url, headers=headers, timeout=30, limits=httpx.Limits(max_connections=1)
    )


def connection_away_from(origin: int, server: Process, url: str, key: str) -> httpx.Client:
    """A connection that the kernel gave to a process of `server` other than `origin`."""
    deadline = time.monotonic() + 30
    while True:
        api = connection(url, key)
        if serving_process(api.get("/api/models"), server) != origin:
            return api
        api.close()
        assert time.monotonic() < deadline, "every connection went to the one process"


def test_a_reply_started_on_one_process_is_resumed_and_stopped_from_another(web, key):
    server, url = web
    with connection(url, key) as starter:
        conversation = starter.post("/api/conversations", json={"model": "fake"}).json()["id"]
        with send(starter, conversation, "Tell me a story.") as started:
            first = [*started.until("delta"), next(started)]
            origin = serving_process(started.response, server)
            mid = first[0].data["message_id"]
            with (
                closing(connection_away_from(origin, server, url, key)) as follower,
                closing(connection_away_from(origin, server, url, key)) as stopper,
                reattach(follower, mid, first[-1].id) as resumed,
            ):
                assert serving_process(resumed.response, server) != origin
                assert next(resumed).id == f"{mid}:{len(first)}", "not resumed where it was left"
                stop = stopper.post(f"/api/messages/{mid}/stop")
                assert stop.status_code == 202
                assert serving_process(stop, server) != origin
                assert resumed.all()[-1].data["status"] == "stopped"
            rest = started.all()
    assert rest[-1].event == "done" and rest[-1].data["status"] == "stopped"
    message = wait_for_status(mid, timeout=15)
    assert message.status == "stopped"
    assert message.content == text_of(first + rest) != ""
