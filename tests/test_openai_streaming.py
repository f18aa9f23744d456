"""A conversation on an OpenAI-compatible upstream, through the site's API over real HTTP."""

import pytest

from chat.models import Message
from tests.conftest import UPSTREAM_MODEL as MODEL
from tests.conftest import send, wait_for_status
from tests.sse import text_of

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pirate_chat(api, upstream):
    body = {"model": MODEL, "system_prompt": "You are a pirate captain."}
    return api.post("/api/conversations", json=body).json()


def test_it_offers_the_upstream_models(api, upstream):
    models = api.get("/api/models").json()["models"]
    assert {"id": MODEL, "provider": "openai", "default": False} in models


def test_it_streams_an_upstream_reply_and_sends_the_whole_conversation(api, upstream, pirate_chat):
    upstream.tokens = ["Ahoy", ",", " matey", "!"]
    with send(api, pirate_chat["id"], "Who are you?") as stream:
        first = stream.all()
    assert text_of(first) == "Ahoy, matey!"
    assert first[-1].data["status"] == "complete"
    upstream.tokens = ["Arr", "."]
    with send(api, pirate_chat["id"], "Where is the gold?") as stream:
        stream.all()
    # The title of the conversation is asked for too, in a request of its own.
    [sent] = [
        r.body
        for r in upstream.requests
        if r.body["messages"][-1]["content"] == "Where is the gold?"
    ]
    assert sent["model"] == MODEL and sent["stream"] is True
    assert sent["messages"] == [
        {"role": "system", "content": "You are a pirate captain."},
        {"role": "user", "content": "Who are you?"},
        {"role": "assistant", "content": "Ahoy, matey!"},
        {"role": "user", "content": "Where is the gold?"},
    ]


def test_an_upstream_error_becomes_an_error_event_and_a_failed_message(api, upstream, pirate_chat):
    upstream.fail_with(429, "Slow down.")
    with send(api, pirate_chat["id"], "Hello") as stream:
        events = stream.all()
    assert events[-1].event == "error"
    assert events[-1].data["code"] == "upstream_rate_limited"
    message = Message.objects.get(pk=events[-1].data["message_id"])
    assert message.status == "failed"
    assert message.error == events[-1].data["message"]


def test_stopping_closes_the_upstream_connection(api, upstream, pirate_chat):
    upstream.tokens = [f" word{i}" for i in range(200)]
    upstream.chunk_delay = 0.05
    with send(api, pirate_chat["id"], "Talk a lot") as stream:
        mid = stream.until("delta")[0].data["message_id"]
        api.post(f"/api/messages/{mid}/stop")
        assert stream.all()[-1].data["status"] == "stopped"
    assert upstream.disconnected.wait(10), "the upstream stream was left open"
    message = wait_for_status(mid)
    assert message.status == "stopped"
    assert 0 < len(message.content.split()) < 200


def test_the_chat_path_always_sends_the_length_cap_upstream(api, upstream, pirate_chat, settings):
    settings.CHAT_MAX_NEW_TOKENS = 3
    upstream.tokens = ["One", " two", " three", " four", " five"]
    with send(api, pirate_chat["id"], "Count to five.") as stream:
        events = stream.all()
    assert upstream.requests[-1].body["max_tokens"] == 3
    assert text_of(events) == "One two three"


def test_an_upstreams_error_body_and_address_reach_the_log_not_the_user(
    api, upstream, pirate_chat, caplog
):
    secret = "Project proj-internal-7 at http://10.1.2.3:9000 exceeded its budget."
    upstream.fail_with(400, secret)
    with send(api, pirate_chat["id"], "Hello") as stream:
        error = stream.all()[-1]
    shown = api.get(f"/api/conversations/{pirate_chat['id']}").text + str(error.data)
    assert error.event == "error" and error.data["code"] == "upstream_error"
    for leak in ("proj-internal-7", "10.1.2.3", upstream.url):
        assert leak not in shown
    assert secret in caplog.text and upstream.url in caplog.text
