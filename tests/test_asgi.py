"""Requests share no thread and no database connection: none can break or hold up another."""

import asyncio
import json
import threading

import httpx
import pytest

from chat.models import Conversation, Message
from tests.conftest import send, wait_for_status

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def long_history(alice) -> None:
    """200 conversations of alice's, 100 messages each: 20,000 messages."""
    conversations = Conversation.objects.bulk_create(
        Conversation(owner=alice, title=f"Long {c}", model="fake") for c in range(200)
    )
    Message.objects.bulk_create(
        (
            Message(conversation=conversation, role="user", content=f"{c} {i}")
            for c, conversation in enumerate(conversations)
            for i in range(100)
        ),
        batch_size=2000,
    )


async def export_among_requests(client: httpx.AsyncClient, count: int):
    """Read the account's export while `count` short requests start and end beside it."""

    async def export() -> list[str]:
        async with client.stream("GET", "/api/export?format=jsonl", timeout=120) as response:
            return [line async for line in response.aiter_lines()]

    async def request() -> int:
        return (await client.get("/api/models", timeout=120)).status_code

    return await asyncio.gather(export(), asyncio.gather(*(request() for _ in range(count))))


def test_it_sends_an_export_whole_while_hundreds_of_other_requests_come_and_go(api, long_history):
    # 50 at a time: each request in flight holds a database connection of its own, and a
    # stock PostgreSQL allows 100 in all (this suite's own connections included).
    # No keep-alive: under load, uvicorn closes a connection idle past its 5 s keep-alive
    # just as the pool reuses it (a ReadError on the client, not a server fault).
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=0)
    client = httpx.AsyncClient(base_url=api.base_url, headers=api.headers, limits=limits)
    lines, others = asyncio.run(export_among_requests(client, 300))
    assert others == [200] * 300
    conversations = [json.loads(line) for line in lines]
    assert len(conversations) == 200
    assert sum(len(c["messages"]) for c in conversations) == 20_000


class InFlight(threading.Thread):
    """A request sent from a thread; `sent` is set once its whole body is on the wire."""

    def __init__(self, client: httpx.Client, method: str, url: str, body: bytes):
        super().__init__(daemon=True)
        self.client, self.method, self.url, self.body = client, method, url, body
        self.sent = threading.Event()
        self.response: httpx.Response | None = None

    def _chunks(self):
        yield self.body
        self.sent.set()

    def run(self):
        self.response = self.client.request(self.method, self.url, content=self._chunks())


def test_health_and_stops_answer_while_a_large_import_is_being_stored(
    api, long_history, conversation, settings
):
    settings.CHAT_FAKE_TOKENS_PER_SECOND = 5
    history = api.get("/api/export").content
    with send(api, conversation["id"], "Hello") as stream:
        mid = stream.until("delta")[0].data["message_id"]
        importing = InFlight(api, "POST", "/api/import", history)
        importing.start()
        assert importing.sent.wait(30)
        assert api.get("/healthz").status_code == 200
        assert api.post(f"/api/messages/{mid}/stop").status_code == 202
        assert importing.is_alive(), "the health check or the stop waited for the import"
        assert stream.all()[-1].data["status"] == "stopped"
    importing.join(60)
    assert importing.response.status_code == 201
    assert wait_for_status(mid).status == "stopped"
