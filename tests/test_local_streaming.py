"""A real reply from the packaged SmolLM2 model, streamed through the site over real HTTP."""

import pytest

from chat.models import Message
from chat.providers.local import LocalProvider
from tests.conftest import send
from tests.sse import text_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.model]
LOCAL = "smollm2-135m"


@pytest.fixture
def local_chat(api, settings, generation_worker):
    settings.CHAT_MAX_NEW_TOKENS = 48
    return api.post("/api/conversations", json={"model": LOCAL}).json()


def test_it_offers_the_local_model(api):
    models = api.get("/api/models").json()["models"]
    assert {"id": LOCAL, "provider": "local", "default": False} in models


def test_it_streams_a_real_reply_from_smollm2(api, local_chat):
    with send(api, local_chat["id"], "What is the capital of France?") as stream:
        events = stream.all()
    done = events[-1]
    assert done.event == "done", events[-1]
    assert done.data["status"] == "complete"
    assert len([e for e in events if e.event == "delta"]) >= 2
    text = text_of(events)
    assert "Paris" in text
    message = Message.objects.get(pk=done.data["message_id"])
    assert message.content == text
    assert message.model == LOCAL
    assert 0 < message.output_tokens <= 48
    assert message.ttft_ms is not None and message.ttft_ms <= message.duration_ms


def test_it_stops_a_local_reply_and_keeps_the_partial_text(api, local_chat, settings):
    settings.CHAT_MAX_NEW_TOKENS = 400
    with send(api, local_chat["id"], "Write a long story about a lighthouse keeper.") as stream:
        seen = stream.until("delta")
        mid = seen[0].data["message_id"]
        api.post(f"/api/messages/{mid}/stop")
        rest = stream.all()
    assert rest[-1].data["status"] == "stopped"
    message = Message.objects.get(pk=mid)
    assert message.status == "stopped"
    assert message.content == text_of(seen + rest)
    assert message.output_tokens < 400


def test_the_v1_usage_counts_the_prompt_as_the_local_model_did(openai_client, generation_worker):
    chat = [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    completion = openai_client.chat.completions.create(model=LOCAL, messages=chat, max_tokens=3)

    # With REDIS_URL a worker generates it: its count travels back with the reply.
    assert completion.usage.prompt_tokens == LocalProvider().count_tokens(LOCAL, chat) > 0
