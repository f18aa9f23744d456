"""The native JSON API: models, conversations, and what bad input gets."""

import pytest

from chat.models import Conversation, Message

pytestmark = pytest.mark.django_db(transaction=True)


def error_code(response) -> str:
    return response.json()["error"]["code"]


def test_it_lists_the_models_with_the_default_marked(api):
    models = api.get("/api/models").json()["models"]
    assert {"id": "fake", "provider": "fake", "default": True} in models


def test_it_creates_a_conversation_with_defaults(api):
    response = api.post("/api/conversations", json={})
    assert response.status_code == 201
    body = response.json()
    assert body["model"] == "fake"
    assert body["title"] == ""
    assert set(body) >= {"id", "title", "model", "created_at", "updated_at"}


def test_it_creates_a_conversation_with_a_persona(api):
    body = {"title": "Ahoy", "model": "fake", "system_prompt": "You are a pirate captain."}
    created = api.post("/api/conversations", json=body).json()
    stored = Conversation.objects.get(pk=created["id"])
    assert (stored.title, stored.system_prompt) == ("Ahoy", "You are a pirate captain.")


def test_it_lists_conversations_newest_first(api):
    ids = [api.post("/api/conversations", json={"title": t}).json()["id"] for t in "abc"]
    api.patch(f"/api/conversations/{ids[0]}", json={"title": "a again"})
    listed = [c["id"] for c in api.get("/api/conversations").json()["conversations"]]
    assert listed == [ids[0], ids[2], ids[1]]


def test_it_searches_titles_and_message_text(api, alice):
    by_title = Conversation.objects.create(owner=alice, title="Sailing plans", model="fake")
    by_text = Conversation.objects.create(owner=alice, title="Other", model="fake")
    by_text.messages.create(role="assistant", content="Hoist the SAILS at dawn")
    Conversation.objects.create(owner=alice, title="Cooking", model="fake")
    found = api.get("/api/conversations", params={"q": "sail"}).json()["conversations"]
    assert {c["id"] for c in found} == {by_title.id, by_text.id}


def test_it_reads_a_conversation_with_its_messages(api, alice):
    conversation = Conversation.objects.create(owner=alice, model="fake")
    hi = conversation.messages.create(role="user", content="Hi")
    conversation.messages.create(
        role="assistant", content="Hello", ttft_ms=80, output_tokens=2, parent=hi
    )
    body = api.get(f"/api/conversations/{conversation.id}").json()
    assert [(m["role"], m["content"]) for m in body["messages"]] == [
        ("user", "Hi"),
        ("assistant", "Hello"),
    ]
    assert set(body["messages"][1]) == {
        "id", "role", "content", "status", "model", "created_at",
        "ttft_ms", "output_tokens", "duration_ms", "error", "parent_id", "siblings",
    }  # fmt: skip


def test_it_renames_and_changes_the_persona(api, conversation):
    body = {"title": "Renamed", "system_prompt": "Be terse."}
    updated = api.patch(f"/api/conversations/{conversation['id']}", json=body).json()
    assert (updated["title"], updated["system_prompt"]) == ("Renamed", "Be terse.")


def test_it_deletes_a_conversation_and_its_messages(api, alice):
    conversation = Conversation.objects.create(owner=alice, model="fake")
    conversation.messages.create(role="user", content="Hi")
    assert api.delete(f"/api/conversations/{conversation.id}").status_code == 204
    assert not Conversation.objects.filter(pk=conversation.id).exists()
    assert not Message.objects.filter(conversation_id=conversation.id).exists()


def post_message(api, conversation, **kwargs):
    return api.post(f"/api/conversations/{conversation['id']}/messages", **kwargs)


def test_invalid_json_is_a_400_and_stores_nothing(api, conversation):
    response = post_message(api, conversation, content=b"{not json")
    assert response.status_code == 400
    assert error_code(response) == "invalid_json"
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "invalid_content"),
        ({"content": 7}, "invalid_content"),
        ({"content": "  "}, "empty_content"),
    ],
)
def test_missing_or_empty_content_is_a_400(api, conversation, body, code):
    response = post_message(api, conversation, json=body)
    assert (response.status_code, error_code(response)) == (400, code)
    assert not Message.objects.exists()


def test_oversized_content_is_a_413(api, conversation, settings):
    settings.CHAT_MAX_CONTENT_CHARS = 100
    response = post_message(api, conversation, json={"content": "x" * 101})
    assert response.status_code == 413
    assert "100" in response.json()["error"]["message"]
    assert not Message.objects.exists()


def test_an_unknown_model_is_a_400(api, conversation):
    response = post_message(api, conversation, json={"content": "hi", "model": "gpt-99"})
    assert (response.status_code, error_code(response)) == (400, "unknown_model")
    bad_create = api.post("/api/conversations", json={"model": "gpt-99"})
    assert bad_create.status_code == 400


def test_a_wrongly_typed_field_is_a_400(api):
    assert api.post("/api/conversations", json={"title": ["x"]}).status_code == 400


def test_a_wrong_method_is_a_json_405(api):
    response = api.put("/api/conversations")
    assert (response.status_code, error_code(response)) == (405, "method_not_allowed")


def test_no_credentials_is_a_401(live_server_url, transactional_db):
    import httpx

    for path in ("/api/models", "/api/conversations", "/api/messages/1/stream"):
        response = httpx.get(live_server_url + path)
        assert response.status_code == 401
        assert error_code(response) == "unauthorized"


def test_a_bad_key_is_a_401(live_server_url, transactional_db):
    import httpx

    response = httpx.get(
        live_server_url + "/api/models", headers={"Authorization": "Bearer cs_nope"}
    )
    assert (response.status_code, error_code(response)) == (401, "invalid_api_key")


def test_the_health_check_answers_without_credentials(live_server_url, transactional_db):
    import httpx

    response = httpx.get(live_server_url + "/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
