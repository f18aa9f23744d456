"""Shared fixtures: users alice and bob, their API keys, and a real ASGI server on loopback."""

from __future__ import annotations

import os
import socket
import threading
import time

import httpx
import pytest
import uvicorn

from chat import providers
from chat.models import ApiKey
from tests.sse import EventStream


@pytest.fixture(autouse=True)
def _test_settings(settings):
    """Offer the fake model and keep the timings short; reset the provider cache around."""
    settings.CHAT_FAKE_MODEL = True
    settings.CHAT_DEFAULT_MODEL = "fake"
    settings.CHAT_FAKE_TOKENS_PER_SECOND = 50
    settings.CHAT_FAKE_TOKENS = 40
    # With REDIS_URL set, keep this run's keys and worker queue apart from any other's.
    settings.CHAT_REDIS_PREFIX = f"chattest{os.getpid()}"
    settings.CHAT_WORKER_CHANNEL = f"chat-generate-test{os.getpid()}"
    providers.reset()
    yield settings
    providers.reset()


class LiveServer:
    """The site served by uvicorn from a thread of this process, on a free loopback port."""

    def __init__(self):
        from chatsite.asgi import application

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(application, lifespan="off", log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def start(self):
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(5)


@pytest.fixture(scope="session")
def live_server_url(django_db_setup, django_db_blocker):
    server = LiveServer()
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="correct horse battery")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", password="another good password")


def _client(base_url: str, user) -> httpx.Client:
    _key, raw = ApiKey.issue(user)
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {raw}"}, timeout=30)


@pytest.fixture
def api(transactional_db, live_server_url, alice):
    """An HTTP client signed in as alice with an API key, talking to the live server."""
    with _client(live_server_url, alice) as client:
        yield client


@pytest.fixture
def bob_api(transactional_db, live_server_url, bob):
    with _client(live_server_url, bob) as client:
        yield client


@pytest.fixture
def conversation(api):
    """A new conversation of alice's on the fake model."""
    return api.post("/api/conversations", json={"model": "fake"}).json()


def send(client: httpx.Client, conversation_id: int, content: str, **body) -> EventStream:
    """POST a message and return the reply's open event stream."""
    request = client.build_request(
        "POST", f"/api/conversations/{conversation_id}/messages", json={"content": content, **body}
    )
    return EventStream(client.send(request, stream=True))
