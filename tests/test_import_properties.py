"""Property tests for the import parsers (chat/imports/): whatever the file holds, the
answer is records or InvalidImport (a 400 naming the problem), never anything else."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat import imports
from chat.errors import ChatError
from chat.imports import InvalidImport

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
anything = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def maybe(strategy):
    """The right kind of value most of the time, anything at all otherwise."""
    return st.one_of(strategy, strategy, strategy, anything)


def chatgpt_message():
    return st.fixed_dictionaries(
        {},
        optional={
            "author": maybe(
                st.fixed_dictionaries(
                    {"role": maybe(st.sampled_from(["user", "assistant", "system", "tool"]))}
                )
            ),
            "content": maybe(
                st.fixed_dictionaries(
                    {
                        "content_type": maybe(st.sampled_from(["text", "multimodal_text", "code"])),
                        "parts": maybe(st.lists(maybe(st.text()), max_size=3)),
                    }
                )
            ),
            "metadata": maybe(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "model_slug": maybe(st.text(max_size=80)),
                        "is_visually_hidden_from_conversation": anything,
                    },
                )
            ),
            "create_time": maybe(st.floats(min_value=0, max_value=4e9)),
            "status": maybe(st.sampled_from(["finished_successfully", "in_progress", "x"])),
        },
    )


@st.composite
def chatgpt_conversation(draw):
    ids = draw(st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=6, unique=True))
    mapping = {}
    for index, node_id in enumerate(ids):
        node = {"message": draw(maybe(chatgpt_message()))}
        if index:
            node["parent"] = draw(maybe(st.sampled_from(ids[:index])))
        node["children"] = draw(maybe(st.lists(st.sampled_from(ids), max_size=3)))
        mapping[node_id] = node
    conversation = {"title": draw(maybe(st.text())), "mapping": draw(maybe(st.just(mapping)))}
    if draw(st.booleans()):
        conversation["current_node"] = draw(maybe(st.sampled_from(ids)))
    for name in ("create_time", "update_time"):
        if draw(st.booleans()):
            conversation[name] = draw(maybe(st.floats(min_value=0, max_value=4e9)))
    return conversation


def parse_or_refuse(data):
    try:
        return imports.parse(data)
    except InvalidImport as refused:
        assert refused.status == 400 and refused.message
        return None


@SETTINGS
@given(anything)
def test_it_reads_any_json_as_records_or_a_400(data):
    parse_or_refuse(data)


@SETTINGS
@given(st.lists(chatgpt_conversation(), max_size=3))
def test_chatgpt_exports_give_clean_records_or_a_400(data):
    records = parse_or_refuse(data)
    for record in records or []:
        assert len(record.title) <= 200
        previous = record.created_at
        for message in record.messages:
            assert message.role in ("user", "assistant")
            assert message.content.strip()
            assert message.created_at >= previous
            previous = message.created_at
        assert record.updated_at >= record.created_at


moments = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
counts = st.none() | st.integers(min_value=0, max_value=2**31 - 1)
chatsite_messages = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["system", "user", "assistant"]),
        "content": st.text(),
        "status": st.sampled_from(["streaming", "complete", "stopped", "failed"]),
        "model": st.text(max_size=100),
        "created_at": moments,
        "ttft_ms": counts,
        "output_tokens": counts,
        "duration_ms": counts,
        "error": st.text(),
    }
)
chatsite_conversations = st.fixed_dictionaries(
    {
        "title": st.text(max_size=200),
        "model": st.text(max_size=100),
        "system_prompt": st.text(),
        "created_at": moments,
        "updated_at": moments,
        "messages": st.lists(chatsite_messages, max_size=4),
    }
)


def as_export(conversations: list[dict]) -> dict:
    def times(item):
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in item.items()}

    return {
        "format": "chatsite.export",
        "version": 1,
        "conversations": [
            {**times(c), "messages": [times(m) for m in c["messages"]]} for c in conversations
        ],
    }


@SETTINGS
@given(st.lists(chatsite_conversations, max_size=3))
def test_our_export_comes_back_exactly(conversations):
    records = imports.parse(json.loads(json.dumps(as_export(conversations))))
    assert [r.title for r in records] == [c["title"] for c in conversations]
    for record, conversation in zip(records, conversations, strict=True):
        assert record.created_at == conversation["created_at"]
        got = [(m.role, m.content, m.status, m.created_at, m.ttft_ms) for m in record.messages]
        sent = [
            (m["role"], m["content"], m["status"], m["created_at"], m["ttft_ms"])
            for m in conversation["messages"]
        ]
        assert got == sent


SPOILED = {
    "title": [7, [], {"a": 1}, "x" * 201],
    "model": [None, 7, [], "m" * 201],
    "created_at": [None, 7, "not a date", "2025-13-45T00:00:00", "0001-01-01T00:00:00+05:00"],
    "messages": [None, 7, {"a": 1}, [7], [{"role": "tool"}]],
}


@SETTINGS
@given(st.lists(chatsite_conversations, min_size=1, max_size=2), st.data())
def test_our_export_with_one_field_spoiled_is_a_400(conversations, data):
    export = as_export(conversations)
    target = data.draw(st.sampled_from(export["conversations"]))
    field = data.draw(st.sampled_from(list(SPOILED)))
    target[field] = data.draw(st.sampled_from(SPOILED[field]))
    assert parse_or_refuse(export) is None, f"{field}={target[field]!r} was accepted"


@SETTINGS
@given(st.binary(max_size=200) | st.builds(lambda d: json.dumps(d).encode(), anything))
def test_any_bytes_read_as_json_or_a_4xx(raw):
    try:
        data = imports.read_file(raw)
    except ChatError as refused:
        assert 400 <= refused.status < 500
        return
    parse_or_refuse(data)
