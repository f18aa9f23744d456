"""Conversations as trees, through the API: versions, regenerate, edits, switching branches."""

import importlib

import httpx
import pytest
from django.apps import apps

from chat.models import Conversation, Message
from chat.usage import usage_for
from tests.conftest import (
    UPSTREAM_MODEL,
    make_conversation,
    reattach,
    replies_asked,
    send,
    wait_for_status,
)
from tests.sse import EventStream, text_of

pytestmark = pytest.mark.django_db(transaction=True)


def ask(api, conversation_id: int, content: str, **body) -> list:
    with send(api, conversation_id, content, **body) as stream:
        return stream.all()


def regenerate(api, message_id: int, **body) -> list:
    request = api.build_request("POST", f"/api/messages/{message_id}/regenerate", json=body)
    with EventStream(api.send(request, stream=True)) as stream:
        return stream.all()


def branch(api, conversation_id: int) -> list[dict]:
    return api.get(f"/api/conversations/{conversation_id}").json()["messages"]


def contents(api, conversation_id: int) -> list[str]:
    return [m["content"] for m in branch(api, conversation_id)]


@pytest.fixture
def two_turns(api, conversation) -> int:
    """alice's conversation after 'echo one' and 'echo two', each answered."""
    for text in ("echo one", "echo two"):
        ask(api, conversation["id"], text)
    return conversation["id"]


def test_it_lists_the_current_branch_with_parents_and_siblings(api, two_turns):
    messages = branch(api, two_turns)
    assert [m["content"] for m in messages] == ["echo one", "one", "echo two", "two"]
    assert [m["parent_id"] for m in messages] == [None] + [m["id"] for m in messages[:-1]]
    assert all(m["siblings"] == [m["id"]] for m in messages)
    detail = api.get(f"/api/conversations/{two_turns}").json()
    assert detail["current_message_id"] == messages[-1]["id"]


def test_it_regenerates_a_reply_as_a_new_sibling(api, two_turns):
    old = branch(api, two_turns)
    events = regenerate(api, old[3]["id"])
    start, done = events[0], events[-1]
    assert start.event == "start" and done.data["status"] == "complete"
    assert start.data["user_message_id"] == old[2]["id"]
    assert text_of(events) == "two"
    new = branch(api, two_turns)
    assert new[3]["id"] == start.data["message_id"]
    assert new[3]["siblings"] == [old[3]["id"], new[3]["id"]]
    assert Message.objects.filter(pk=old[3]["id"]).exists(), "the old reply is kept"


def test_it_regenerates_an_earlier_reply_and_keeps_what_followed(api, two_turns):
    old = branch(api, two_turns)
    events = regenerate(api, old[1]["id"])
    new = branch(api, two_turns)
    assert [m["content"] for m in new] == ["echo one", "one"]
    assert new[1]["id"] == events[0].data["message_id"]
    assert new[1]["siblings"] == [old[1]["id"], new[1]["id"]]
    api.patch(f"/api/conversations/{two_turns}", json={"current_message_id": old[1]["id"]})
    assert contents(api, two_turns) == ["echo one", "one", "echo two", "two"]


def test_parent_id_edits_an_earlier_question(api, two_turns):
    old = branch(api, two_turns)
    ask(api, two_turns, "echo uno", parent_id=None)
    new = branch(api, two_turns)
    assert [m["content"] for m in new] == ["echo uno", "uno"]
    assert new[0]["siblings"] == [old[0]["id"], new[0]["id"]]
    ask(api, two_turns, "echo dos", parent_id=old[1]["id"])
    assert contents(api, two_turns) == ["echo one", "one", "echo dos", "dos"]
    assert branch(api, two_turns)[2]["siblings"] == [old[2]["id"], branch(api, two_turns)[2]["id"]]


def test_a_message_without_parent_id_follows_the_current_leaf(api, two_turns):
    old = branch(api, two_turns)
    api.patch(f"/api/conversations/{two_turns}", json={"current_message_id": old[1]["id"]})
    ask(api, two_turns, "echo three")
    assert contents(api, two_turns) == ["echo one", "one", "echo two", "two", "echo three", "three"]


def test_replace_last_keeps_the_old_turn_as_a_sibling(api, two_turns):
    old = branch(api, two_turns)
    ask(api, two_turns, "echo two, edited", replace_last=True)
    new = branch(api, two_turns)
    assert [m["content"] for m in new] == ["echo one", "one", "echo two, edited", "two, edited"]
    assert new[2]["siblings"] == [old[2]["id"], new[2]["id"]]
    assert Message.objects.filter(conversation_id=two_turns).count() == 6


def test_switching_to_a_message_follows_its_newest_descendants(api, two_turns):
    old = branch(api, two_turns)
    regenerate(api, old[3]["id"])
    ask(api, two_turns, "echo uno", parent_id=None)
    response = api.patch(
        f"/api/conversations/{two_turns}", json={"current_message_id": old[0]["id"]}
    )
    assert response.status_code == 200
    shown = response.json()["messages"]
    assert [m["content"] for m in shown] == ["echo one", "one", "echo two", "two"]
    assert shown[3]["id"] != old[3]["id"], "the newest version of the reply"
    assert response.json()["current_message_id"] == shown[3]["id"]


def test_the_model_sees_only_the_current_branch(api, upstream):
    cid = api.post("/api/conversations", json={"model": UPSTREAM_MODEL}).json()["id"]
    upstream.tokens = ["First answer."]
    ask(api, cid, "First question")
    upstream.tokens = ["Abandoned answer."]
    ask(api, cid, "A question I will rewrite")
    first_reply = branch(api, cid)[1]["id"]
    upstream.tokens = ["Better answer."]
    ask(api, cid, "The rewritten question", parent_id=first_reply)
    ask(api, cid, "And then?")
    assert replies_asked(upstream)[-1]["messages"] == [
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": "First answer."},
        {"role": "user", "content": "The rewritten question"},
        {"role": "assistant", "content": "Better answer."},
        {"role": "user", "content": "And then?"},
    ]
    regenerate(api, branch(api, cid)[1]["id"])
    assert replies_asked(upstream)[-1]["messages"] == [
        {"role": "user", "content": "First question"}
    ]


@pytest.mark.parametrize(
    "body, code",
    [
        ({"parent_id": "seven"}, "invalid_parent"),
        ({"parent_id": 10**9}, "invalid_parent"),
        ({"parent_id": True}, "invalid_parent"),
        ({"replace_last": True, "parent_id": None}, "invalid_parent"),
    ],
)
def test_a_bad_parent_id_is_a_400_and_stores_nothing(api, two_turns, body, code):
    before = Message.objects.count()
    response = api.post(
        f"/api/conversations/{two_turns}/messages", json={"content": "echo x", **body}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert Message.objects.count() == before


def test_a_question_cannot_follow_a_question(api, two_turns):
    question = branch(api, two_turns)[2]["id"]
    response = api.post(
        f"/api/conversations/{two_turns}/messages", json={"content": "x", "parent_id": question}
    )
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_parent")


def test_a_parent_from_another_users_conversation_is_refused(api, two_turns, bobs_conversation):
    bobs = bobs_conversation.messages.get().id
    response = api.post(
        f"/api/conversations/{two_turns}/messages", json={"content": "x", "parent_id": bobs}
    )
    assert response.status_code == 400
    assert "secret" not in response.text


def test_only_a_reply_can_be_regenerated(api, two_turns):
    question = branch(api, two_turns)[0]["id"]
    response = api.post(f"/api/messages/{question}/regenerate")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "not_a_reply")


def test_regenerating_someone_elses_reply_is_a_404(api, bob_api, two_turns):
    reply = branch(api, two_turns)[1]["id"]
    response = bob_api.post(f"/api/messages/{reply}/regenerate")
    assert response.status_code == 404
    assert Message.objects.filter(conversation_id=two_turns).count() == 4


def test_regenerate_is_refused_while_a_reply_is_being_written(api, two_turns, settings):
    settings.CHAT_FAKE_TOKENS_PER_SECOND = 5
    reply = branch(api, two_turns)[1]["id"]
    with send(api, two_turns, "slowly") as stream:
        start = stream.until("start")[0]
        response = api.post(f"/api/messages/{reply}/regenerate")
        assert (response.status_code, response.json()["error"]["code"]) == (
            409,
            "reply_in_progress",
        )
        api.post(f"/api/messages/{start.data['message_id']}/stop")
        stream.all()


def test_a_regenerated_earlier_reply_can_be_reattached_and_stopped(api, conversation, settings):
    for text in ("Tell me a story", "echo and then?"):
        ask(api, conversation["id"], text)
    settings.CHAT_FAKE_TOKENS_PER_SECOND = 5
    first_reply = branch(api, conversation["id"])[1]["id"]
    request = api.build_request("POST", f"/api/messages/{first_reply}/regenerate")
    response = api.send(request, stream=True)
    with EventStream(response) as original:
        new_id = original.until("start")[0].data["message_id"]
        with reattach(api, new_id) as again:
            assert again.until("start")[0].data["message_id"] == new_id
            stop = api.post(f"/api/messages/{new_id}/stop")
            assert stop.json()["stopping"] is True
            assert again.all()[-1].data["status"] == "stopped"
    assert wait_for_status(new_id).status == Message.Status.STOPPED


def test_switching_to_a_message_of_another_conversation_is_a_400(api, two_turns, alice):
    other = make_conversation(alice, "Other", [("user", "elsewhere", "complete")])
    for value in (other.messages.get().id, "last", None):
        response = api.patch(f"/api/conversations/{two_turns}", json={"current_message_id": value})
        assert (response.status_code, response.json()["error"]["code"]) == (
            400,
            "invalid_message",
        )


def test_search_finds_text_in_every_version(api, two_turns):
    ask(api, two_turns, "echo platypus", replace_last=True)
    ask(api, two_turns, "echo wombat", replace_last=True)
    found = api.get("/api/conversations", params={"q": "platypus"}).json()["conversations"]
    assert [c["id"] for c in found] == [two_turns]


def test_usage_counts_every_version_of_a_reply(api, two_turns, alice):
    reply = branch(api, two_turns)[3]["id"]
    regenerate(api, reply)
    regenerate(api, reply)
    usage = usage_for(alice)
    assert (usage.messages, usage.replies) == (2, 4)
    tokens = sum(Message.objects.filter(role="assistant").values_list("output_tokens", flat=True))
    assert usage.by_model[0].output_tokens == tokens


def test_the_admin_transcript_shows_every_version_marked(api, two_turns, admin_client):
    reply = branch(api, two_turns)[3]["id"]
    regenerate(api, reply)
    page = admin_client.get(f"/admin/chat/conversation/{two_turns}/change/").content.decode()
    assert page.count("version 1 of 2, other branch") == 1
    assert page.count("version 2 of 2, shown") == 1
    assert page.count("version 1 of 1, shown") == 3


def test_the_migration_links_old_conversations_as_single_branches(alice):
    conversation = Conversation.objects.create(owner=alice, model="fake")
    old = [
        conversation.messages.create(role=role, content=text)
        for role, text in [("user", "a"), ("assistant", "b"), ("user", "c")]
    ]
    empty = Conversation.objects.create(owner=alice, model="fake")
    migration = importlib.import_module("chat.migrations.0009_branches_tree")
    migration.link_as_single_branches(apps, None)
    linked = list(conversation.messages.order_by("id"))
    assert [m.parent_id for m in linked] == [None, old[0].id, old[1].id]
    conversation.refresh_from_db()
    empty.refresh_from_db()
    assert (conversation.current_message_id, empty.current_message_id) == (old[2].id, None)


def test_the_markdown_export_shows_the_current_branch(api, two_turns):
    ask(api, two_turns, "echo deux", replace_last=True)
    response = api.get(f"/api/conversations/{two_turns}/export", params={"format": "markdown"})
    text = response.text
    assert "echo deux" in text and "echo two" not in text
    assert "2 messages of other branches are left out" in text


def test_a_shared_link_shows_the_current_branch_only(api, two_turns, live_server_url):
    ask(api, two_turns, "echo deux", replace_last=True)
    url = api.post(f"/api/conversations/{two_turns}/share").json()["url"]
    page = httpx.get(live_server_url + url).text
    assert "deux" in page and "echo two" not in page


def test_switching_branches_changes_nothing_else(api, two_turns):
    first = branch(api, two_turns)
    regenerate(api, first[3]["id"])
    before = Conversation.objects.get(pk=two_turns)
    response = api.patch(
        f"/api/conversations/{two_turns}", json={"current_message_id": first[3]["id"]}
    )
    assert response.status_code == 200
    after = Conversation.objects.get(pk=two_turns)
    assert after.updated_at == before.updated_at, "the sidebar's order stays"
    assert (after.model, after.temperature) == (before.model, before.temperature)
