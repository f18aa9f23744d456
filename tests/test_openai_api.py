"""The OpenAI-compatible API, driven by the official `openai` client against the live server."""

import json

import httpx
import openai
import pytest
from django.test import Client

from chat.completions import Completion, CompletionRequest
from chat.models import Conversation, Message
from chat.providers import Generation
from chat.providers.fake import FakeProvider
from tests.conftest import UPSTREAM_MODEL, replies_asked, wait_for_status, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = [
    {"role": "system", "content": "You are a parrot."},
    {"role": "user", "content": "Polly wants a cracker?"},
    {"role": "assistant", "content": "Squawk!"},
    {"role": "user", "content": "echo hello there, captain"},
]


def message_id(completion_id: str) -> int:
    prefix, _, number = completion_id.partition("-")
    assert prefix == "chatcmpl"
    return int(number)


@pytest.fixture
def raw_v1(live_server_url, openai_client):
    """Plain HTTP to /v1 with the same key, to see exactly what goes over the wire."""
    headers = {"Authorization": f"Bearer {openai_client.api_key}"}
    with httpx.Client(base_url=f"{live_server_url}/v1", headers=headers, timeout=30) as client:
        yield client


@pytest.fixture
def generations(monkeypatch):
    """Every Generation the fake model is asked for, as it was asked."""
    seen = []
    original = FakeProvider.stream

    def recording(self, generation):
        seen.append(generation)
        return original(self, generation)

    monkeypatch.setattr(FakeProvider, "stream", recording)
    return seen


def test_it_lists_the_models(openai_client):
    models = {m.id: m for m in openai_client.models.list()}
    assert models["fake"].object == "model"
    assert models["fake"].owned_by == "fake"
    assert openai_client.models.retrieve("fake").id == "fake"


def test_an_unknown_model_is_a_404_model_not_found(openai_client):
    with pytest.raises(openai.NotFoundError) as raised:
        openai_client.chat.completions.create(model="gpt-9", messages=CHAT)
    assert raised.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        openai_client.models.retrieve("gpt-9")


def test_it_answers_a_completion_and_keeps_the_chat_in_the_owners_history(openai_client, alice):
    completion = openai_client.chat.completions.create(model="fake", messages=CHAT)
    assert completion.object == "chat.completion"
    assert completion.model == "fake"
    [choice] = completion.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == "hello there, captain"
    assert choice.finish_reason == "stop"
    # The fake echoes four characters a token: 20 characters, 5 tokens.
    assert completion.usage.completion_tokens == 5
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 5

    reply = Message.objects.get(pk=message_id(completion.id))
    conversation = reply.conversation
    assert conversation.owner == alice
    assert conversation.title == "Polly wants a cracker?"
    assert conversation.system_prompt == "You are a parrot."
    assert conversation.model == "fake"
    stored = [(m.role, m.content, m.status) for m in conversation.messages.all()]
    assert stored == [
        ("user", "Polly wants a cracker?", "complete"),
        ("assistant", "Squawk!", "complete"),
        ("user", "echo hello there, captain", "complete"),
        ("assistant", "hello there, captain", "complete"),
    ]
    assert (reply.model, reply.output_tokens) == ("fake", 5)
    assert reply.ttft_ms is not None


def test_it_streams_chunks_that_join_up_to_the_stored_reply(openai_client):
    chunks = list(
        openai_client.chat.completions.create(
            model="fake", messages=[{"role": "user", "content": "Hello"}], stream=True
        )
    )
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert all(c.usage is None for c in chunks)
    reply = Message.objects.get(pk=message_id(chunks[0].id))
    assert text == reply.content
    assert len(text.split()) == 40
    assert reply.status == "complete"


def test_a_stream_is_server_sent_events_ending_with_done(raw_v1):
    body = {"model": "fake", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    with raw_v1.stream("POST", "/chat/completions", json=body) as response:
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["cache-control"] == "no-cache"
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"


def test_it_sends_the_usage_in_a_last_chunk_when_asked(openai_client):
    chunks = list(
        openai_client.chat.completions.create(
            model="fake",
            messages=[{"role": "user", "content": "Hello"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    *content, last = chunks
    assert last.choices == []
    assert last.usage.completion_tokens == 40
    assert last.usage.total_tokens == last.usage.prompt_tokens + 40
    assert all(c.usage is None for c in content)
    assert content[-1].choices[0].finish_reason == "stop"


def upstreams_prompt_tokens(upstream) -> int:
    """What the test upstream reports: a token per word of the messages it was sent."""
    sent = replies_asked(upstream)[-1]["messages"]
    return sum(len(m["content"].split()) for m in sent)


def test_the_usage_reports_the_prompt_tokens_an_upstream_counted(openai_client, upstream):
    completion = openai_client.chat.completions.create(model=UPSTREAM_MODEL, messages=CHAT)
    chunks = list(
        openai_client.chat.completions.create(
            model=UPSTREAM_MODEL,
            messages=CHAT,
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    # Not this site's estimate (four characters a token): the upstream's own count.
    assert completion.usage.prompt_tokens == upstreams_prompt_tokens(upstream)
    assert chunks[-1].usage.prompt_tokens == upstreams_prompt_tokens(upstream)


def test_max_tokens_cuts_the_reply_short_with_finish_reason_length(openai_client):
    completion = openai_client.chat.completions.create(
        model="fake", messages=[{"role": "user", "content": "Hello"}], max_tokens=5
    )
    assert completion.choices[0].message.content == "The quick brown fox jumps"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 5


def test_temperature_stop_and_max_tokens_reach_the_model(openai_client, generations, settings):
    openai_client.chat.completions.create(
        model="fake",
        messages=[{"role": "user", "content": "Hello"}],
        temperature=0.3,
        stop=["lazy", "dog"],
        max_completion_tokens=7,
    )
    openai_client.chat.completions.create(
        model="fake", messages=[{"role": "user", "content": "Hi"}], stop="fox"
    )
    first, second = generations
    assert (first.temperature, first.stop_sequences, first.max_tokens) == (0.3, ["lazy", "dog"], 7)
    cap = settings.CHAT_MAX_NEW_TOKENS  # no max_tokens asked: the site's cap
    assert (second.temperature, second.stop_sequences, second.max_tokens) == (None, ["fox"], cap)


def test_a_failed_reply_is_an_error_in_openais_shape_and_stays_in_the_history(openai_client):
    with pytest.raises(openai.InternalServerError) as raised:
        openai_client.chat.completions.create(
            model="fake", messages=[{"role": "user", "content": "fail please"}]
        )
    assert raised.value.code == "fake_failure"
    assert raised.value.response.headers["x-should-retry"] == "false"
    failed = Message.objects.get(role="assistant")
    assert (failed.status, failed.error) == ("failed", raised.value.body["message"])


def test_a_reply_failing_mid_stream_raises_in_the_client(openai_client):
    stream = openai_client.chat.completions.create(
        model="fake", messages=[{"role": "user", "content": "fail please"}], stream=True
    )
    with pytest.raises(openai.APIError, match="The fake model failed"):
        for _chunk in stream:
            pass


HI = [{"role": "user", "content": "Hi"}]


@pytest.mark.parametrize(
    "body, param",
    [
        ({"model": "fake"}, "messages"),
        ({"model": "fake", "messages": []}, "messages"),
        ({"messages": HI}, "model"),
        ({"model": "fake", "messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
        ({"model": "fake", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"model": "fake", "messages": HI, "temperature": 9}, "temperature"),
        ({"model": "fake", "messages": HI, "max_tokens": 0}, "max_tokens"),
        ({"model": "fake", "messages": HI, "stop": [1]}, "stop"),
        ({"model": "fake", "messages": HI, "n": 2}, "n"),
    ],
)
def test_a_bad_request_is_a_400_naming_the_parameter(raw_v1, body, param):
    response = raw_v1.post("/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert not Conversation.objects.exists()


def test_the_last_message_must_be_the_users(openai_client):
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    with pytest.raises(openai.BadRequestError) as raised:
        openai_client.chat.completions.create(model="fake", messages=messages)
    assert raised.value.code == "invalid_messages"
    assert not Conversation.objects.exists()


def test_text_content_parts_and_the_developer_role_are_understood(openai_client):
    completion = openai_client.chat.completions.create(
        model="fake",
        messages=[
            {"role": "developer", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "echo in "},
                    {"type": "text", "text": "parts"},
                ],
            },
        ],  # fmt: skip
    )
    assert completion.choices[0].message.content == "in parts"
    assert Conversation.objects.get().system_prompt == "Be brief."


def test_a_bad_or_revoked_key_is_a_401_in_openais_shape(live_server_url, openai_client, alice):
    stranger = openai.OpenAI(base_url=f"{live_server_url}/v1", api_key="cs_wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as raised:
        stranger.models.list()
    assert raised.value.code == "invalid_api_key"
    assert raised.value.body["type"] == "invalid_request_error"
    alice.api_keys.update(revoked_at=alice.date_joined)
    with pytest.raises(openai.AuthenticationError):
        openai_client.chat.completions.create(model="fake", messages=CHAT)


def test_a_session_cookie_does_not_open_v1(alice):
    browser = Client()
    browser.force_login(alice)
    response = browser.get("/v1/models")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_the_wrong_method_is_a_405_in_openais_shape(raw_v1):
    response = raw_v1.get("/chat/completions")
    assert response.status_code == 405
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_a_client_that_hangs_up_stops_the_reply_after_the_grace_period(openai_client, settings):
    settings.CHAT_FAKE_TOKENS_PER_SECOND = 5  # eight seconds in all
    settings.CHAT_DISCONNECT_GRACE_SECONDS = 3
    stream = openai_client.chat.completions.create(
        model="fake", messages=[{"role": "user", "content": "Hello"}], stream=True
    )
    first = next(iter(stream))  # the role: no words yet
    stream.close()
    mid = message_id(first.id)
    # A second's worth of words, written with nobody listening: the grace period at work.
    wait_until(lambda: len(Message.objects.get(pk=mid).content.split()) >= 5, what="writing on")
    reply = wait_for_status(mid, timeout=15)
    assert reply.status == "stopped"
    assert len(reply.content.split()) < 40


def test_a_completion_can_be_stopped_through_the_native_api(openai_client, api, settings):
    settings.CHAT_FAKE_TOKENS_PER_SECOND = 10
    stream = openai_client.chat.completions.create(
        model="fake", messages=[{"role": "user", "content": "Hello"}], stream=True
    )
    chunks = iter(stream)
    mid = message_id(next(chunks).id)
    assert api.post(f"/api/messages/{mid}/stop").status_code == 202
    rest = list(chunks)
    assert rest[-1].choices[0].finish_reason == "stop"
    assert wait_for_status(mid).status == "stopped"


@pytest.mark.parametrize("text", ["hi", ' "quoted" \\ back?', "héllo\n\t\u2028", "?", ""])
@pytest.mark.parametrize("model", ["fake", 'odd "?" name'])
def test_it_writes_a_delta_frame_as_the_whole_chunk_would_read(text, model):
    request = CompletionRequest(model=model, messages=[], stream=True, include_usage=True)
    completion = Completion(7, request, Generation(model=model, messages=[]))

    frame = completion.delta_frame(text)

    assert frame.startswith(b"data: ") and frame.endswith(b"\n\n")
    assert json.loads(frame[6:]) == completion.chunk({"content": text})
