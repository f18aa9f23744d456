"""Titles written by the model after a conversation's first reply, in the background."""

import asyncio
import time

import pytest

from chat import titles
from chat.models import Conversation
from chat.usage import output_tokens_since, usage_for
from tests.conftest import UPSTREAM_MODEL, at, send

pytestmark = pytest.mark.django_db(transaction=True)


def reply_to(api, conversation_id: int, content: str) -> int:
    """Send `content`, read the reply to its end; the reply's message id."""
    with send(api, conversation_id, content) as stream:
        events = stream.all()
    assert events[-1].event == "done", events[-1]
    return events[-1].data["message_id"]


def once_titled(conversation_id: int, timeout: float = 20) -> Conversation:
    """The conversation once the model's attempt at its title has ended."""
    deadline = time.monotonic() + timeout
    while (found := Conversation.objects.get(pk=conversation_id)).titled_at is None:
        assert time.monotonic() < deadline, "the model never tried to title the conversation"
        time.sleep(0.05)
    return found


def test_it_titles_a_conversation_after_its_first_reply(api, conversation):
    reply_to(api, conversation["id"], "echo Otters and their habits")
    titled = once_titled(conversation["id"])
    # The fake model echoes the question, the first line of what it is sent.
    assert (titled.title, titled.title_source) == ("Otters and their habits", "model")
    shown = api.get(f"/api/conversations/{conversation['id']}").json()
    assert (shown["title"], shown["title_source"]) == ("Otters and their habits", "model")
    assert [m["role"] for m in shown["messages"]] == ["user", "assistant"]  # not a message


def test_it_counts_the_titles_tokens_as_usage(api, conversation, alice):
    reply_to(api, conversation["id"], "echo Otters and their habits")
    titled = once_titled(conversation["id"])
    assert titled.title_tokens > 0
    usage = usage_for(alice)
    reply_tokens = sum(m.output_tokens for m in usage.by_model)
    assert usage.title_tokens == titled.title_tokens
    assert usage.output_tokens == reply_tokens + titled.title_tokens
    assert output_tokens_since(alice, at(0)) == usage.output_tokens


def test_it_writes_no_title_after_later_replies(api, conversation):
    reply_to(api, conversation["id"], "echo Otters")
    once_titled(conversation["id"])
    Conversation.objects.filter(pk=conversation["id"]).update(title="Back to the first line")
    Conversation.objects.filter(pk=conversation["id"]).update(title_source="first_line")
    second = reply_to(api, conversation["id"], "echo Beavers")
    assert asyncio.run(titles.write_title(second)) is None
    assert Conversation.objects.get(pk=conversation["id"]).title == "Back to the first line"


def test_it_never_overwrites_a_title_the_user_gave(api):
    conversation = api.post("/api/conversations", json={"title": "Mine", "model": "fake"}).json()
    reply = reply_to(api, conversation["id"], "echo Otters")
    assert asyncio.run(titles.write_title(reply)) is None
    assert Conversation.objects.get(pk=conversation["id"]).title == "Mine"


def test_it_keeps_the_users_rename_made_while_the_title_is_written(api, upstream):
    conversation = api.post("/api/conversations", json={"model": UPSTREAM_MODEL}).json()
    upstream.tokens = ["Otters", " hold", " hands"]
    reply_to(api, conversation["id"], "Tell me about otters.")
    upstream.chunk_delay = 0.2  # the title takes a while
    deadline = time.monotonic() + 10
    while len(upstream.requests) < 2:  # the title has been asked for
        assert time.monotonic() < deadline, "no title was asked for"
        time.sleep(0.02)
    api.patch(f"/api/conversations/{conversation['id']}", json={"title": "Sea creatures"})
    titled = once_titled(conversation["id"])
    assert (titled.title, titled.title_source) == ("Sea creatures", "user")
    assert titled.title_tokens == 3  # spent all the same


def test_a_failed_title_keeps_the_first_line(api, upstream):
    conversation = api.post("/api/conversations", json={"model": UPSTREAM_MODEL}).json()
    upstream.chunk_delay = 0.05
    with send(api, conversation["id"], "Tell me about otters.") as stream:
        stream.until("delta")
        upstream.fail_with(500, "The title server is down.")  # for the requests after this
        assert stream.all()[-1].data["status"] == "complete"
    titled = once_titled(conversation["id"])
    assert (titled.title, titled.title_source) == ("Tell me about otters.", "first_line")


@pytest.mark.parametrize(
    "answer, title",
    [
        ('"Otters: A Love Story."', "Otters: A Love Story"),
        ("Title: **Sea otters**\nThey float.", "Sea otters"),
        (
            "one two three four five six seven eight nine ten",
            "one two three four five six seven eight",
        ),
        ("   \n", ""),
    ],
)
def test_it_cleans_what_the_model_writes_into_a_title(answer, title):
    assert titles.clean_title(answer) == title
