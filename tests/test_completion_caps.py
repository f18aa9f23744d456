"""/v1/chat/completions caps what one call may send: messages, each turn, all together."""

from __future__ import annotations

import pytest

from chat.models import Conversation


def turns(count: int, content: str = "a") -> list[dict]:
    """`count` turns, alternating, the last one the user's."""
    roles = ("user", "assistant")
    return [{"role": roles[(count - 1 - i) % 2], "content": content} for i in range(count)]


def complete(api, messages, **body):
    return api.post("/v1/chat/completions", json={"model": "fake", "messages": messages, **body})


def refusal(response) -> tuple[int, str, str | None]:
    error = response.json()["error"]
    return response.status_code, error["code"], error["param"]


def test_30000_messages_are_a_413_naming_messages(api):
    response = complete(api, turns(30_001))
    assert refusal(response) == (413, "content_too_large", "messages")
    assert not Conversation.objects.exists()


def test_a_chat_at_the_message_cap_is_answered(api, settings):
    settings.CHAT_FAKE_TOKENS = 2
    response = complete(api, turns(settings.CHAT_COMPLETION_MAX_MESSAGES))
    assert response.status_code == 200
    assert Conversation.objects.get().messages.count() == settings.CHAT_COMPLETION_MAX_MESSAGES + 1


def test_an_earlier_turn_over_the_content_limit_is_a_413(api, settings):
    settings.CHAT_MAX_CONTENT_CHARS = 100
    messages = [{"role": "user", "content": "x" * 101}, *turns(3)]
    assert refusal(complete(api, messages)) == (413, "content_too_large", "messages[0].content")
    assert not Conversation.objects.exists()


def test_an_earlier_turn_made_of_parts_over_the_content_limit_is_a_413(api, settings):
    settings.CHAT_MAX_CONTENT_CHARS = 100
    parts = [{"type": "text", "text": "x" * 60}] * 2
    messages = [{"role": "user", "content": parts}, *turns(3)]
    response = complete(api, messages)
    assert response.status_code == 413
    assert "messages[0]" in response.json()["error"]["message"]
    assert not Conversation.objects.exists()


@pytest.mark.parametrize("count", [2, 11])
def test_all_turns_together_over_the_cap_are_a_413(api, settings, count):
    settings.CHAT_COMPLETION_MAX_CHARS = 1000
    response = complete(api, turns(count, "y" * (1000 // count + 1)))
    assert refusal(response)[:2] == (413, "content_too_large")
    assert "1000" in response.json()["error"]["message"]
    assert not Conversation.objects.exists()


def test_the_turns_sent_are_stored_as_one_branch_in_order(api, settings):
    settings.CHAT_FAKE_TOKENS = 2
    messages = [{"role": ("user", "assistant")[i % 2], "content": f"turn {i}"} for i in range(7)]
    assert complete(api, messages).status_code == 200
    shown = api.get(f"/api/conversations/{Conversation.objects.get().pk}").json()["messages"]
    assert [m["content"] for m in shown[:-1]] == [m["content"] for m in messages]
    assert shown[-1]["role"] == "assistant" and shown[-1]["content"]
