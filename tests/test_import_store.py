"""Writing an import: hidden until complete, in short transactions that let others write."""

import json
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from chat.imports import records, store
from chat.models import Conversation, Message
from chat.usage import usage_for
from tests.conftest import at, send

pytestmark = pytest.mark.django_db(transaction=True)


def history(messages: int, title: str = "Imported") -> dict:
    """A chatsite export of one conversation with `messages` messages."""
    moment = at(0).isoformat()
    turns = [
        {"role": ("user", "assistant")[i % 2], "content": f"imported turn {i}",
         "status": "complete", "created_at": moment}
        for i in range(messages)
    ]  # fmt: skip
    conversation = {"title": title, "model": "fake", "created_at": moment,
                    "updated_at": moment, "messages": turns}  # fmt: skip
    return {"format": "chatsite.export", "version": 1, "conversations": [conversation]}


@pytest.fixture
def half_written(alice):
    """A conversation of alice's as an import leaves it halfway: hidden, some messages in."""
    record = records.ConversationRecord(
        title="Half-written", model="fake", system_prompt="", created_at=at(0), updated_at=at(1)
    )
    conversation_id = store.create_hidden(alice, record)
    turn = records.MessageRecord(role="user", content="half-written secret", created_at=at(1))
    store.add_messages(conversation_id, [turn])
    return Conversation.objects.get(pk=conversation_id)


def test_a_half_written_import_is_behind_every_door(api, alice, half_written, admin_client):
    cid = half_written.pk
    message = half_written.messages.get()
    assert api.get("/api/conversations").json()["conversations"] == []
    assert api.get("/api/conversations", params={"q": "secret"}).json()["conversations"] == []
    for path in (f"/api/conversations/{cid}", f"/api/conversations/{cid}/export",
                 f"/api/messages/{message.pk}/stream"):  # fmt: skip
        assert api.get(path).status_code == 404, path
    assert api.post(f"/api/conversations/{cid}/messages", json={"content": "hi"}).status_code == 404
    assert api.get("/api/export").json()["conversations"] == []
    usage = usage_for(alice)
    assert (usage.conversations, usage.messages) == (0, 0)
    assert b"Half-written" not in admin_client.get("/admin/chat/conversation/").content
    assert admin_client.get(f"/admin/chat/conversation/{cid}/change/").status_code == 302


def test_an_import_shows_everything_at_once_when_complete(api, alice):
    response = api.post("/api/import", json=history(1200))

    assert response.status_code == 201
    [listed] = api.get("/api/conversations").json()["conversations"]
    assert listed["id"] == response.json()["conversations"][0]
    assert len(api.get(f"/api/conversations/{listed['id']}").json()["messages"]) == 1200
    assert not Conversation.objects.filter(importing_since__isnull=False).exists()


def import_in_background(api, data: dict) -> tuple[threading.Thread, dict]:
    outcome = {}

    def post():
        outcome["response"] = api.post("/api/import", json=data, timeout=600)

    thread = threading.Thread(target=post)
    thread.start()
    return thread, outcome


def hidden_messages() -> int:
    return Message.objects.filter(conversation__importing_since__isnull=False).count()


def test_another_users_send_goes_through_while_an_import_is_being_written(
    api, bob_api, alice, settings
):
    settings.CHAT_FAKE_TOKENS = 3
    total = 20_000
    bobs = bob_api.post("/api/conversations", json={}).json()
    thread, outcome = import_in_background(api, history(total))

    # Committed a transaction at a time: another connection sees the import half-written.
    deadline = time.monotonic() + 120
    while not 0 < hidden_messages() < total // 2:
        assert thread.is_alive() and time.monotonic() < deadline, "never seen half-written"
        time.sleep(0.005)
    with send(bob_api, bobs["id"], "Am I held up?") as stream:
        events = stream.all()
    thread.join(600)

    assert events[0].event == "start" and events[-1].data["status"] == "complete"
    assert outcome["response"].status_code == 201
    imported = Message.objects.filter(conversation__owner=alice)
    assert imported.count() == total
    if connection.vendor == "sqlite":
        # One writer at a time: bob's message went in between two of the import's
        # transactions. (PostgreSQL never made bob wait; it writes too fast to tell.)
        first, last = imported.order_by("pk")[0].pk, imported.order_by("-pk")[0].pk
        assert first < events[0].data["user_message_id"] < last


def test_a_failed_import_leaves_nothing_visible_or_hidden(api, alice, monkeypatch):
    add_messages = store.add_messages
    seen_half_written = []

    def write_some_then_fail(conversation_id, messages):
        add_messages(conversation_id, messages[:10])
        seen_half_written.append(api.get("/api/conversations").json()["conversations"])
        raise OSError("No space left on device")

    monkeypatch.setattr(store, "add_messages", write_some_then_fail)
    browser = Client(raise_request_exception=False)
    browser.force_login(alice)

    response = browser.post("/api/import", json.dumps(history(50)), "application/json")

    assert response.status_code == 500
    assert seen_half_written == [[]]
    assert api.get("/api/conversations").json()["conversations"] == []
    assert not Conversation.objects.exists() and not Message.objects.exists()


def test_an_import_clears_what_a_dead_process_left_hidden(api, alice, half_written):
    recent = Conversation.objects.create(
        owner=alice, model="fake", importing_since=timezone.now() - timedelta(minutes=5)
    )
    Conversation.objects.filter(pk=half_written.pk).update(
        importing_since=timezone.now() - store.ABANDONED_AFTER - timedelta(minutes=1)
    )

    assert api.post("/api/import", json=history(2)).status_code == 201

    assert not Conversation.objects.filter(pk=half_written.pk).exists()
    assert not Message.objects.filter(content="half-written secret").exists()
    # Another import may still be writing this one.
    assert Conversation.objects.filter(pk=recent.pk).exists()
