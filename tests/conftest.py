"""Shared fixtures: users alice and bob, their API keys, and a real ASGI server on loopback."""

from __future__ import annotations

import os
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import openai
import pytest
import uvicorn

from chat import providers
from chat.models import ApiKey, Conversation
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
def openai_client(transactional_db, live_server_url, alice):
    """The official `openai` client with a key of alice's, pointed at the live server's /v1."""
    _key, raw = ApiKey.issue(alice)
    base_url = f"{live_server_url}/v1"
    with openai.OpenAI(base_url=base_url, api_key=raw, max_retries=0, timeout=30) as client:
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


def at(minute: int) -> datetime:
    """A fixed moment, `minute` minutes into 1 March 2025 (UTC)."""
    return datetime(2025, 3, 1, 9, 0, tzinfo=UTC) + timedelta(minutes=minute, microseconds=123)


def make_conversation(owner, title: str, turns: list[tuple], **fields) -> Conversation:
    """A stored conversation: `turns` are (role, content, status) with times a minute apart."""
    conversation = Conversation.objects.create(
        owner=owner, title=title, model="fake", created_at=at(0), **fields
    )
    for minute, (role, content, status) in enumerate(turns, start=1):
        reply = role == "assistant"
        conversation.messages.create(
            role=role,
            content=content,
            status=status,
            created_at=at(minute),
            model="fake" if reply else "",
            ttft_ms=40 + minute if reply else None,
            output_tokens=len(content.split()) if reply else None,
            duration_ms=400 + minute if reply else None,
            error="The fake model failed, as asked." if status == "failed" else "",
        )
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=at(len(turns)))
    conversation.refresh_from_db()
    return conversation


@pytest.fixture
def alices_history(alice) -> list[Conversation]:
    """Two conversations of alice's: a persona, and replies complete, stopped and failed."""
    return [
        make_conversation(
            alice,
            "Otters",
            [
                ("user", "Tell me about otters.", "complete"),
                ("assistant", "Otters hold hands while they sleep.", "complete"),
                ("user", "And sea otters?", "complete"),
                ("assistant", "Sea otters use", "stopped"),
            ],
            system_prompt="You are a marine biologist.",
        ),
        make_conversation(
            alice,
            "Ünïcödé & <markup>",
            [("user", "fail now", "complete"), ("assistant", "The quick", "failed")],
        ),
    ]


@pytest.fixture
def bobs_conversation(bob) -> Conversation:
    return make_conversation(bob, "Bob's secret plan", [("user", "my secret plan", "complete")])
