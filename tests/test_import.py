"""Importing history: our own export back again, ChatGPT's conversations.json, bad files."""

import io
import json
import zipfile

import pytest
from django.test import Client

from chat import exports, imports, parsing
from chat.imports import store
from chat.models import Conversation, Message

pytestmark = pytest.mark.django_db(transaction=True)

START = 1_700_000_000.5  # a ChatGPT create_time: Unix seconds


def node(node_id, parent, children, role=None, text="", minute=0, **message):
    """One node of a ChatGPT `mapping`; role None makes the message-less root."""
    if role is None:
        return {"id": node_id, "message": None, "parent": parent, "children": children}
    content = message.pop("content", {"content_type": "text", "parts": [text]})
    body = {
        "id": node_id,
        "author": {"role": role, "name": None, "metadata": {}},
        "create_time": START + 60 * minute,
        "content": content,
        "status": message.pop("status", "finished_successfully"),
        "metadata": message.pop("metadata", {}),
        **message,
    }
    return {"id": node_id, "message": body, "parent": parent, "children": children}


def chatgpt_export() -> list[dict]:
    """Two conversations as ChatGPT exports them: one with an edited question."""
    hidden = {"is_visually_hidden_from_conversation": True}
    gpt4o = {"model_slug": "gpt-4o"}
    tool_output = {"content_type": "execution_output", "text": "ok"}
    with_image = {
        "content_type": "multimodal_text",
        "parts": [{"asset_pointer": "x"}, "Here it is."],
    }
    edited = [
        node("root", None, ["sys"]),
        node("sys", "root", ["u1"], "system", "", metadata=hidden),
        node("u1", "sys", ["a1"], "user", "Hello there", 1),
        node("a1", "u1", ["u2", "u2b"], "assistant", "General Kenobi!", 2, metadata=gpt4o),
        node("u2", "a1", ["a2"], "user", "the question before the edit", 3),
        node("a2", "u2", [], "assistant", "an answer on the abandoned branch", 4),
        node("u2b", "a1", ["tool"], "user", "Show me a lightsaber", 5),
        node("tool", "u2b", ["a3"], "tool", "", 6, content=tool_output),
        node("a3", "tool", [], "assistant", minute=7, content=with_image,
             status="finished_partial_completion"),
    ]  # fmt: skip
    plain = [
        node("r", None, ["q"]),
        node("q", "r", ["a"], "system", "Be brief."),
        node("a", "q", ["b"], "user", "Hi", 10),
        node("b", "a", [], "assistant", "Hello.", 11),
    ]
    return [
        {
            "title": "Star Wars",
            "create_time": START,
            "update_time": START + 600,
            "mapping": {n["id"]: n for n in edited},
            "current_node": "a3",
            "default_model_slug": "gpt-4o",
        },
        {"title": "Short", "create_time": START, "mapping": {n["id"]: n for n in plain}},
    ]


def imported(user) -> list[Conversation]:
    return list(Conversation.objects.for_user(user).order_by("id"))


def test_our_export_round_trips_every_conversation_message_and_time(
    api, bob_api, bob, alices_history
):
    exported = api.get("/api/export").json()
    response = bob_api.post("/api/import", json=exported)
    assert response.status_code == 201, response.text
    assert response.json()["messages"] == 6
    again = bob_api.get("/api/export").json()
    assert len(again["conversations"]) == 2

    assert [comparable(c) for c in again["conversations"]] == [
        comparable(c) for c in exported["conversations"]
    ]


def comparable(conversation: dict) -> dict:
    """An exported conversation with its ids replaced by positions in the file."""
    position = {m["id"]: index for index, m in enumerate(conversation["messages"])}
    messages = [
        {**m, "id": None, "parent_id": position.get(m["parent_id"])}
        for m in conversation["messages"]
    ]
    current = position.get(conversation["current_message_id"])
    return {
        **conversation,
        "id": None,
        "owner": None,
        "current_message_id": current,
        "messages": messages,
    }


def test_a_tree_comes_back_as_the_same_tree(api, bob_api, bob):
    conversation = api.post("/api/conversations", json={"model": "fake"}).json()
    cid = conversation["id"]
    for text in ("echo one", "echo two"):
        api.post(f"/api/conversations/{cid}/messages", json={"content": text}).read()
    first = api.get(f"/api/conversations/{cid}").json()["messages"]
    api.post(f"/api/messages/{first[1]['id']}/regenerate").read()
    body = {"content": "echo two, edited", "parent_id": first[1]["id"]}
    api.post(f"/api/conversations/{cid}/messages", json=body).read()
    api.patch(f"/api/conversations/{cid}", json={"current_message_id": first[3]["id"]})
    exported = api.get(f"/api/conversations/{cid}/export").json()
    assert len(exported["conversations"][0]["messages"]) == 7

    assert bob_api.post("/api/import", json=exported).status_code == 201
    again = bob_api.get("/api/export").json()
    # (The model titles the original in the background; which title it has is not the point.)
    skip = {"title", "title_source"}
    copy, original = (
        {k: v for k, v in comparable(c["conversations"][0]).items() if k not in skip}
        for c in (again, exported)
    )
    assert copy == original
    [copy] = bob_api.get("/api/conversations").json()["conversations"]
    branch = bob_api.get(f"/api/conversations/{copy['id']}").json()["messages"]
    assert [m["content"] for m in branch] == ["echo one", "one", "echo two", "two"]
    assert [len(m["siblings"]) for m in branch] == [1, 2, 2, 1]


def test_an_export_from_before_branches_imports_as_one_branch(api, alice):
    conversation = {
        "title": "Old",
        "model": "fake",
        "created_at": "2025-03-01T09:00:00Z",
        "updated_at": "2025-03-01T09:02:00Z",
        "messages": [
            {"role": role, "content": text, "status": "complete", "created_at": when}
            for role, text, when in [
                ("user", "Hi", "2025-03-01T09:01:00Z"),
                ("assistant", "Hello", "2025-03-01T09:02:00Z"),
            ]
        ],
    }
    response = api.post("/api/import", json={"conversations": [conversation]})
    assert response.status_code == 201, response.text
    [cid] = response.json()["conversations"]
    branch = api.get(f"/api/conversations/{cid}").json()["messages"]
    assert [m["content"] for m in branch] == ["Hi", "Hello"]
    assert branch[1]["parent_id"] == branch[0]["id"]


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"parent_id": 999_999}, "parent_id 999999 is not a message of it"),
        ({"parent_id": "one"}, "parent_id must be a message id"),
        ({"id": "x"}, "id must be a message id"),
    ],
)
def test_a_broken_tree_is_refused_and_imports_nothing(api, alices_history, change, problem):
    exported = api.get("/api/export").json()
    exported["conversations"][0]["messages"][2].update(change)
    before = Message.objects.count()
    response = api.post("/api/import", json=exported)
    assert response.status_code == 400
    assert problem in response.json()["error"]["message"]
    assert Message.objects.count() == before


def test_a_loop_of_parents_is_refused(api, alices_history):
    exported = api.get("/api/export").json()
    messages = exported["conversations"][0]["messages"]
    messages[0]["parent_id"] = messages[3]["id"]
    response = api.post("/api/import", json=exported)
    assert response.status_code == 400
    assert "form a loop" in response.json()["error"]["message"]


def test_per_chat_settings_travel_with_the_export(api, bob_api, alices_history):
    cid = alices_history[0].id
    api.patch(f"/api/conversations/{cid}", json={"temperature": 0.3, "max_tokens": 7})
    exported = api.get(f"/api/conversations/{cid}/export").json()
    bob_api.post("/api/import", json=exported)
    [copy] = bob_api.get("/api/conversations").json()["conversations"]
    assert (copy["temperature"], copy["max_tokens"]) == (0.3, 7)


def test_it_imports_a_single_conversations_export_as_a_form_upload(api, alices_history):
    exported = api.get(f"/api/conversations/{alices_history[0].id}/export").content
    response = api.post("/api/import", files={"file": ("otters.json", exported)})
    assert response.status_code == 201, response.text
    [new_id] = response.json()["conversations"]
    copy = Conversation.objects.get(pk=new_id)
    assert (copy.title, copy.system_prompt) == ("Otters", "You are a marine biologist.")
    assert [m.status for m in copy.messages.all()] == ["complete"] * 3 + ["stopped"]


def test_it_imports_every_branch_of_chatgpts_mapping(api, alice):
    response = api.post("/api/import", json=chatgpt_export())
    assert response.status_code == 201, response.text
    assert response.json()["messages"] == 8
    star_wars, short = imported(alice)
    shown = api.get(f"/api/conversations/{star_wars.id}").json()["messages"]
    assert [m["content"] for m in shown] == [
        "Hello there",
        "General Kenobi!",
        "Show me a lightsaber",
        "Here it is.",
    ], "ChatGPT's current node is the current branch"
    assert [len(m["siblings"]) for m in shown] == [1, 1, 2, 1]
    edited = Message.objects.get(pk=shown[2]["siblings"][0])
    assert edited.content == "the question before the edit"
    assert edited.children.get().content == "an answer on the abandoned branch"
    messages = [Message.objects.get(pk=m["id"]) for m in shown]
    assert [(m.role, m.content) for m in messages] == [
        ("user", "Hello there"),
        ("assistant", "General Kenobi!"),
        ("user", "Show me a lightsaber"),
        ("assistant", "Here it is."),
    ]
    assert [m.status for m in messages] == ["complete", "complete", "complete", "stopped"]
    assert messages[1].model == "gpt-4o"
    assert messages[0].created_at.timestamp() == START + 60
    assert star_wars.title == "Star Wars"
    assert star_wars.system_prompt == ""
    assert star_wars.model == "fake", "the conversation goes on with a model served here"
    assert star_wars.created_at.timestamp() == START
    assert star_wars.updated_at.timestamp() == START + 600
    assert short.system_prompt == "Be brief."
    assert [m.content for m in short.messages.all()] == ["Hi", "Hello."]


def test_a_large_file_is_read_with_the_sites_settings(api, alice):
    data = chatgpt_export()
    long_question = "Hello there. " * 6000
    data[0]["mapping"]["u1"]["message"]["content"]["parts"] = [long_question]
    assert len(json.dumps(data)) > parsing.INLINE_BYTES  # read in the worker process
    response = api.post("/api/import", json=data)
    assert response.status_code == 201, response.text
    star_wars, _ = imported(alice)
    assert star_wars.model == "fake", "the default model the tests set, not the environment's"
    assert star_wars.messages.filter(content=long_question).exists()


def test_without_a_current_node_the_newest_chatgpt_branch_is_current(api, alice):
    data = chatgpt_export()[:1]
    del data[0]["current_node"]
    [cid] = api.post("/api/import", json=data).json()["conversations"]
    shown = api.get(f"/api/conversations/{cid}").json()["messages"]
    assert shown[-1]["content"] == "Here it is."


def test_a_loop_in_chatgpts_mapping_is_refused(api):
    data = chatgpt_export()[1:]
    data[0]["mapping"]["r"]["parent"] = "b"
    response = api.post("/api/import", json=data)
    assert response.status_code == 400
    assert "form a loop" in response.json()["error"]["message"]


def test_it_imports_chatgpts_zip_as_downloaded(api, alice):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("chat.html", "<html></html>")
        zipped.writestr("conversations.json", json.dumps(chatgpt_export()))
    response = api.post("/api/import", files={"file": ("export.zip", archive.getvalue())})
    assert response.status_code == 201, response.text
    assert [c.title for c in imported(alice)] == ["Star Wars", "Short"]


def test_an_imported_conversation_can_be_continued(api, alice):
    api.post("/api/import", json=chatgpt_export())
    short = imported(alice)[1]
    response = api.post(f"/api/conversations/{short.id}/messages", json={"content": "echo more"})
    assert response.status_code == 200
    assert "event: done" in response.text
    assert [m.content for m in short.messages.all()][-2:] == ["echo more", "more"]


@pytest.mark.parametrize(
    "body, problem",
    [
        (b"{not json", "not valid JSON"),
        (b'{"hello": "world"}', "neither a chatsite export"),
        (b'{"conversations": {}}', "conversations must be a list"),
        (b'{"format": "other", "conversations": []}', "'format' must be 'chatsite.export'"),
        (b'[{"title": "no mapping"}]', "conversation 1 has no 'mapping'"),
    ],
)
def test_a_bad_file_gets_a_400_saying_what_is_wrong(api, body, problem):
    response = api.post("/api/import", content=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_import"
    assert problem in error["message"]


def test_one_bad_message_imports_nothing(api, alice, alices_history):
    exported = api.get("/api/export").json()
    exported["conversations"][1]["messages"][1]["role"] = "narrator"
    before = (Conversation.objects.count(), Message.objects.count())
    response = api.post("/api/import", json=exported)
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "conversations[1].messages[1].role must be one of system, user, assistant" in message
    assert (Conversation.objects.count(), Message.objects.count()) == before


@pytest.mark.parametrize(
    "field, value, problem",
    [
        ("created_at", "yesterday", "created_at must be an ISO 8601 date and time"),
        ("status", "thinking", "status must be one of"),
        ("ttft_ms", -1, "ttft_ms must be a whole number"),
        ("content", None, "content must be a string"),
    ],
)
def test_it_names_the_bad_field(api, alices_history, field, value, problem):
    exported = api.get("/api/export").json()
    exported["conversations"][0]["messages"][2][field] = value
    response = api.post("/api/import", json=exported)
    assert response.status_code == 400
    assert f"conversations[0].messages[2].{problem}" in response.json()["error"]["message"]


def test_a_failure_while_storing_leaves_nothing_behind(alice, alices_history, monkeypatch):
    data = json.loads("".join(exports.export(Conversation.objects.all(), "json")))
    add_messages = store.add_messages
    calls = []

    def add_then_break(conversation_id, messages):
        calls.append(conversation_id)
        first = add_messages(conversation_id, messages[:1])
        if len(calls) == 2:
            raise RuntimeError("the disk is full")
        return first + add_messages(conversation_id, messages[1:])

    monkeypatch.setattr(store, "add_messages", add_then_break)
    before = (Conversation.objects.count(), Message.objects.count())
    with pytest.raises(RuntimeError):
        imports.import_history(alice, data)
    assert (Conversation.objects.count(), Message.objects.count()) == before


def test_it_refuses_a_file_over_the_limit(api, settings):
    settings.CHAT_IMPORT_MAX_BYTES = 100
    body = json.dumps({"conversations": [], "padding": "x" * 200}).encode()
    assert api.post("/api/import", content=body).status_code == 413
    response = api.post("/api/import", files={"file": ("big.json", body)})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "content_too_large"


def test_a_form_upload_needs_the_file_field(api):
    response = api.post("/api/import", files={"other": ("x.json", b"[]")})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "missing_file"


def test_a_large_export_imports_past_djangos_form_body_limit(api, alice, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    conversation = {
        "title": "Long",
        "model": "fake",
        "created_at": "2025-03-01T09:00:00+00:00",
        "updated_at": "2025-03-01T09:00:00+00:00",
        "messages": [
            {"role": "user", "content": "x" * 100, "status": "complete",
             "created_at": "2025-03-01T09:00:00+00:00"}
        ] * 50,
    }  # fmt: skip
    response = api.post("/api/import", json={"conversations": [conversation]})
    assert response.status_code == 201, response.text
    assert Message.objects.filter(conversation__owner=alice).count() == 50


def test_import_needs_credentials_and_a_csrf_token_for_sessions(alice):
    assert Client().post("/api/import", b"[]", content_type="application/json").status_code == 401
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    refused = browser.post("/api/import", b"[]", content_type="application/json")
    assert refused.status_code == 403
