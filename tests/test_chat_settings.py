"""Per-chat settings: temperature and the longest reply, stored, clamped, and used by replies."""

import pytest

from tests.conftest import UPSTREAM_MODEL, replies_asked, send

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_new_conversation_uses_the_defaults(api, conversation):
    assert (conversation["temperature"], conversation["max_tokens"]) == (None, None)


def test_it_stores_the_settings_on_creation_and_on_patch(api):
    created = api.post("/api/conversations", json={"temperature": 0.7, "max_tokens": 100}).json()
    assert (created["temperature"], created["max_tokens"]) == (0.7, 100)
    path = f"/api/conversations/{created['id']}"
    patched = api.patch(path, json={"temperature": 0, "max_tokens": None}).json()
    assert (patched["temperature"], patched["max_tokens"]) == (0.0, None)
    assert api.get(path).json()["temperature"] == 0.0


def test_a_reply_longer_than_the_sites_limit_is_lowered_to_it(api, conversation, settings):
    settings.CHAT_MAX_NEW_TOKENS = 64
    path = f"/api/conversations/{conversation['id']}"
    assert api.patch(path, json={"max_tokens": 100_000}).json()["max_tokens"] == 64


@pytest.mark.parametrize(
    "body",
    [
        {"temperature": 2.5},
        {"temperature": -0.1},
        {"temperature": "hot"},
        {"temperature": True},
        {"max_tokens": 0},
        {"max_tokens": 1.5},
        {"max_tokens": "many"},
    ],
)
def test_a_bad_setting_is_a_400_and_changes_nothing(api, conversation, body):
    path = f"/api/conversations/{conversation['id']}"
    api.patch(path, json={"temperature": 1.0, "max_tokens": 10})
    response = api.patch(path, json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_field"
    assert (api.get(path).json()["temperature"], api.get(path).json()["max_tokens"]) == (1.0, 10)


def test_replies_use_the_conversations_settings(api, upstream, settings):
    settings.CHAT_MAX_NEW_TOKENS = 300
    body = {"model": UPSTREAM_MODEL, "temperature": 1.3, "max_tokens": 42}
    cid = api.post("/api/conversations", json=body).json()["id"]
    with send(api, cid, "Hello") as stream:
        stream.all()
    sent = replies_asked(upstream)[-1]
    assert (sent["temperature"], sent["max_tokens"]) == (1.3, 42)


def test_a_limit_lowered_later_still_caps_a_stored_length(api, upstream, settings):
    body = {"model": UPSTREAM_MODEL, "max_tokens": 400}
    cid = api.post("/api/conversations", json=body).json()["id"]
    settings.CHAT_MAX_NEW_TOKENS = 50
    with send(api, cid, "Hello") as stream:
        stream.all()
    assert replies_asked(upstream)[-1]["max_tokens"] == 50


def test_the_fake_model_writes_no_more_than_the_stored_length(api, conversation):
    api.patch(f"/api/conversations/{conversation['id']}", json={"max_tokens": 5})
    with send(api, conversation["id"], "Hello") as stream:
        done = stream.all()[-1]
    assert done.data["output_tokens"] == 5
