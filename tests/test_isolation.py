"""Two users never see, change, export, stream, resume or stop each other's conversations."""

import pytest

from chat.models import Conversation, Message
from chat.usage import usage_for
from tests.conftest import send

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alices_reply(api, conversation, settings):
    settings.CHAT_FAKE_TOKENS_PER_SECOND = 10
    with send(api, conversation["id"], "my secret plan") as stream:
        start = next(stream)
        yield start.data["message_id"]
        api.post(f"/api/messages/{start.data['message_id']}/stop")
        stream.all()


def test_bob_cannot_list_or_search_alices_conversations(api, bob_api, conversation):
    assert bob_api.get("/api/conversations").json()["conversations"] == []
    assert bob_api.get("/api/conversations", params={"q": ""}).json()["conversations"] == []


def test_bob_gets_404_for_alices_conversation_by_any_method(bob_api, conversation):
    path = f"/api/conversations/{conversation['id']}"
    assert bob_api.get(path).status_code == 404
    assert bob_api.patch(path, json={"title": "mine now"}).status_code == 404
    assert bob_api.delete(path).status_code == 404
    posted = bob_api.post(path + "/messages", json={"content": "hi"})
    assert posted.status_code == 404
    assert "secret" not in posted.text
    assert Conversation.objects.get(pk=conversation["id"]).title == ""


def test_bob_cannot_stream_or_stop_alices_reply(api, bob_api, alices_reply):
    streamed = bob_api.get(f"/api/messages/{alices_reply}/stream")
    assert streamed.status_code == 404
    assert "secret" not in streamed.text
    assert bob_api.post(f"/api/messages/{alices_reply}/stop").status_code == 404
    assert Message.objects.get(pk=alices_reply).status == "streaming", "bob's stop reached it"


def test_bob_cannot_export_alices_conversation_in_any_format(bob_api, alices_history):
    for fmt in ("json", "markdown"):
        response = bob_api.get(f"/api/conversations/{alices_history[0].id}/export?format={fmt}")
        assert response.status_code == 404
        assert "Otters" not in response.text


def test_bobs_whole_export_and_usage_hold_nothing_of_alices(bob_api, bob, alices_history):
    exported = bob_api.get("/api/export").json()
    assert exported["conversations"] == []
    usage = usage_for(bob)
    assert (usage.conversations, usage.messages, usage.replies) == (0, 0, 0)


def test_an_import_lands_only_in_the_importers_account(api, bob_api, alice, bob, alices_history):
    exported = api.get("/api/export").json()
    assert bob_api.post("/api/import", json=exported).status_code == 201
    assert Conversation.objects.for_user(alice).count() == 2
    assert Conversation.objects.for_user(bob).count() == 2
    assert len(api.get("/api/conversations").json()["conversations"]) == 2


@pytest.fixture
def alices_completion(openai_client, settings):
    """A reply alice is streaming through the OpenAI-compatible API: its message id."""
    settings.CHAT_FAKE_TOKENS_PER_SECOND = 10
    stream = openai_client.chat.completions.create(
        model="fake", messages=[{"role": "user", "content": "my secret plan"}], stream=True
    )
    first = next(iter(stream))
    yield int(first.id.removeprefix("chatcmpl-"))
    stream.close()


def test_bob_cannot_see_resume_or_stop_alices_openai_completion(bob_api, alices_completion):
    mid = alices_completion
    assert bob_api.get("/api/conversations").json()["conversations"] == []
    resumed = bob_api.get(f"/api/messages/{mid}/stream", headers={"Last-Event-ID": f"{mid}:0"})
    assert resumed.status_code == 404
    assert "secret" not in resumed.text
    assert bob_api.post(f"/api/messages/{mid}/stop").status_code == 404
    conversation_id = Message.objects.get(pk=mid).conversation_id
    assert bob_api.get(f"/api/conversations/{conversation_id}/export").status_code == 404
    assert Message.objects.get(pk=mid).status == "streaming", "bob's stop reached it"
