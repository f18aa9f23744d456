"""Usage: one user's messages, replies, tokens and median time to first token per model."""

import pytest

from chat.models import Conversation
from chat.usage import ModelUsage, usage_for

pytestmark = pytest.mark.django_db


def replies(owner, model: str, ttfts: list, tokens: int = 10) -> Conversation:
    conversation = Conversation.objects.create(owner=owner, model=model)
    for ttft in ttfts:
        conversation.messages.create(role="user", content="hi")
        conversation.messages.create(
            role="assistant", content="hello", model=model, ttft_ms=ttft, output_tokens=tokens
        )
    return conversation


def test_it_counts_messages_replies_and_tokens_per_model(alice):
    replies(alice, "fake", [300, 100, 200], tokens=5)
    replies(alice, "smollm2-135m", [80, 40], tokens=20)
    usage = usage_for(alice)
    assert (usage.conversations, usage.messages, usage.replies) == (2, 5, 5)
    assert usage.output_tokens == 3 * 5 + 2 * 20
    assert usage.by_model == [
        ModelUsage("fake", replies=3, output_tokens=15, ttft_p50_ms=200),
        ModelUsage("smollm2-135m", replies=2, output_tokens=40, ttft_p50_ms=40),
    ]


def test_the_median_skips_replies_that_never_produced_a_token(alice):
    replies(alice, "fake", [None, None, 500, 10, 30])
    [fake] = usage_for(alice).by_model
    assert (fake.replies, fake.ttft_p50_ms) == (5, 30)


def test_a_model_with_no_timed_reply_has_no_median(alice):
    replies(alice, "fake", [None])
    assert usage_for(alice).by_model[0].ttft_p50_ms is None


def test_it_counts_only_the_users_own(alice, bob):
    replies(bob, "fake", [100, 100])
    usage = usage_for(alice)
    assert (usage.conversations, usage.messages, usage.replies, usage.by_model) == (0, 0, 0, [])


def test_assistant_turns_a_client_sent_along_are_not_counted_as_replies(alice):
    conversation = replies(alice, "fake", [100])
    conversation.messages.create(role="assistant", content="written by the client")
    usage = usage_for(alice)
    assert usage.replies == 1
    assert [m.model for m in usage.by_model] == ["fake"]
