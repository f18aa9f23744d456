"""Exporting history: per conversation as JSON or Markdown, the whole account, the command."""

import io
import json
import tracemalloc

import httpx
import pytest
from django.core.management import CommandError, call_command

from chat import exports
from chat.models import Conversation, Message
from tests.conftest import at

pytestmark = pytest.mark.django_db(transaction=True)


def export_of(response) -> dict:
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    return response.json()


def test_it_exports_a_conversation_as_json_with_every_field(api, alices_history):
    otters = alices_history[0]
    response = api.get(f"/api/conversations/{otters.id}/export", params={"format": "json"})
    assert response.headers["content-type"] == "application/json"
    assert f'filename="conversation-{otters.id}.json"' in response.headers["content-disposition"]
    body = export_of(response)
    assert (body["format"], body["version"]) == ("chatsite.export", 1)
    [conversation] = body["conversations"]
    assert conversation["title"] == "Otters"
    assert conversation["system_prompt"] == "You are a marine biologist."
    assert conversation["owner"] == "alice"
    assert conversation["updated_at"] == at(4).isoformat()
    messages = conversation["messages"]
    assert [(m["role"], m["status"]) for m in messages] == [
        ("user", "complete"),
        ("assistant", "complete"),
        ("user", "complete"),
        ("assistant", "stopped"),
    ]
    assert messages[1]["content"] == "Otters hold hands while they sleep."
    assert messages[1]["created_at"] == at(2).isoformat()
    assert (messages[1]["ttft_ms"], messages[1]["output_tokens"]) == (42, 6)


def test_it_defaults_to_json(api, alices_history):
    body = export_of(api.get(f"/api/conversations/{alices_history[1].id}/export"))
    assert body["conversations"][0]["title"] == "Ünïcödé & <markup>"


def test_it_exports_a_conversation_as_markdown(api, alices_history):
    otters = alices_history[0]
    response = api.get(f"/api/conversations/{otters.id}/export", params={"format": "markdown"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/markdown")
    assert f'filename="conversation-{otters.id}.md"' in response.headers["content-disposition"]
    text = response.text
    assert text.startswith("# Otters\n")
    assert "> You are a marine biologist." in text
    assert "## User, 2025-03-01 09:01:00 UTC\n\nTell me about otters.\n" in text
    assert "## Assistant (fake), 2025-03-01 09:02:00 UTC\n\nOtters hold hands" in text
    assert "Sea otters use\n\n*Stopped before the end.*" in text


def test_markdown_says_why_a_reply_failed(api, alices_history):
    path = f"/api/conversations/{alices_history[1].id}/export?format=markdown"
    assert "*Failed: The fake model failed, as asked.*" in api.get(path).text


def test_it_refuses_an_unknown_format(api, alices_history):
    response = api.get(f"/api/conversations/{alices_history[0].id}/export?format=pdf")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_format"


def test_it_exports_the_whole_account_and_nothing_of_anyone_elses(
    api, alices_history, bobs_conversation
):
    response = api.get("/api/export")
    assert "chatsite-alice-" in response.headers["content-disposition"]
    body = export_of(response)
    assert [c["title"] for c in body["conversations"]] == ["Otters", "Ünïcödé & <markup>"]
    assert [len(c["messages"]) for c in body["conversations"]] == [4, 2]
    assert "secret" not in response.text


def test_an_empty_account_exports_an_empty_list(api):
    assert export_of(api.get("/api/export"))["conversations"] == []


def test_export_needs_credentials(live_server_url, alices_history):
    response = httpx.get(f"{live_server_url}/api/export")
    assert response.status_code == 401


@pytest.fixture
def long_conversation(alice):
    """One conversation of 10,000 messages, about 5 MB of text."""
    conversation = Conversation.objects.create(owner=alice, title="Long", model="fake")
    filler = "word " * 100
    Message.objects.bulk_create(
        (
            Message(conversation=conversation, role="user", content=f"{i} {filler}")
            for i in range(10_000)
        ),
        batch_size=1000,
    )
    return conversation


def test_it_streams_ten_thousand_messages_over_http(api, long_conversation):
    with api.stream("GET", f"/api/conversations/{long_conversation.id}/export") as response:
        assert "content-length" not in response.headers, "the export was not streamed"
        body = export_of(response.read() and response)
    messages = body["conversations"][0]["messages"]
    assert len(messages) == 10_000
    assert [int(m["content"].split()[0]) for m in messages] == list(range(10_000))


def test_memory_stays_flat_while_exporting_ten_thousand_messages(long_conversation):
    size = 0
    tracemalloc.start()
    try:
        for part in exports.export(Conversation.objects.all(), "json"):
            size += len(part)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size > 5_000_000
    assert peak < size / 3, f"peak {peak} bytes for a {size}-byte export"


def test_the_command_exports_everyone_as_json(alices_history, bobs_conversation):
    out = io.StringIO()
    call_command("export_history", "--no-progress", stdout=out)
    body = json.loads(out.getvalue())
    owners = {(c["owner"], c["title"]) for c in body["conversations"]}
    assert owners == {
        ("alice", "Otters"),
        ("alice", "Ünïcödé & <markup>"),
        ("bob", "Bob's secret plan"),
    }


def test_the_command_exports_one_user_as_jsonl(alices_history, bobs_conversation):
    out = io.StringIO()
    call_command(
        "export_history", "--user", "alice", "--format", "jsonl", "--no-progress", stdout=out
    )
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [c["title"] for c in lines] == ["Otters", "Ünïcödé & <markup>"]
    assert len(lines[0]["messages"]) == 4


def test_the_command_writes_markdown_to_a_file(alices_history, tmp_path):
    target = tmp_path / "history.md"
    call_command("export_history", "--format", "markdown", "-o", str(target), "--no-progress")
    text = target.read_text(encoding="utf-8")
    assert text.startswith("# Otters\n")
    assert "\n---\n\n# Ünïcödé & <markup>\n" in text


def test_the_command_draws_a_progress_bar(alices_history, capsys):
    call_command("export_history", stdout=io.StringIO())
    assert "2/2" in capsys.readouterr().err


def test_the_command_refuses_an_unknown_user():
    with pytest.raises(CommandError, match="No user 'nobody'"):
        call_command("export_history", "--user", "nobody")
