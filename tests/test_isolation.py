"""Two users never see, change, stream or stop each other's conversations."""

import pytest

from chat.models import Conversation, Message
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
