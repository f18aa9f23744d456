"""The reply stream end to end, over real HTTP against a live ASGI server, on the fake model."""

import pytest

from chat.models import Message
from tests.conftest import log_expired, reattach, send, wait_for_status, wait_until
from tests.sse import EventStream, text_of

pytestmark = pytest.mark.django_db(transaction=True)


def stored(message_id: int) -> Message:
    return Message.objects.get(pk=message_id)


def test_it_streams_start_deltas_and_done_with_the_contracts_headers(api, conversation):
    with send(api, conversation["id"], "Hello") as stream:
        assert stream.response.status_code == 200
        assert stream.response.headers["content-type"] == "text/event-stream"
        assert stream.response.headers["cache-control"] == "no-cache"
        assert stream.response.headers["x-accel-buffering"] == "no"
        assert "content-encoding" not in stream.response.headers
        events = stream.all()
    start, *deltas, done = events
    assert start.event == "start" and done.event == "done"
    assert {d.event for d in deltas} == {"delta"}
    mid = start.data["message_id"]
    assert [e.id for e in events] == [f"{mid}:{seq}" for seq in range(len(events))]
    assert start.data["conversation_id"] == conversation["id"]
    assert start.data["model"] == "fake"
    assert done.data["status"] == "complete"
    assert done.data["output_tokens"] == 40
    message = stored(mid)
    assert message.content == text_of(deltas)
    assert message.status == "complete"
    assert message.ttft_ms == done.data["ttft_ms"] is not None
    assert message.duration_ms >= message.ttft_ms
    user_message = stored(start.data["user_message_id"])
    assert (user_message.role, user_message.content) == ("user", "Hello")


def test_it_resumes_with_last_event_id_giving_exactly_the_remaining_text(api, conversation):
    with send(api, conversation["id"], "Hello") as stream:
        first = [next(stream) for _ in range(4)]
    mid = first[0].data["message_id"]
    with reattach(api, mid, first[-1].id) as rest:
        remaining = rest.all()
    assert remaining[0].id == f"{mid}:4"
    assert remaining[-1].event == "done"
    assert text_of(first) + text_of(remaining) == stored(mid).content


def test_it_resumes_with_the_query_parameter_too(api, conversation):
    with send(api, conversation["id"], "Hello") as stream:
        first = [next(stream) for _ in range(3)]
    mid = first[0].data["message_id"]
    url = f"/api/messages/{mid}/stream?last_event_id={first[-1].id}"
    with EventStream(api.send(api.build_request("GET", url), stream=True)) as rest:
        remaining = rest.all()
    assert text_of(first) + text_of(remaining) == stored(mid).content


def test_it_replays_a_finished_reply_whole_and_ends(api, conversation):
    with send(api, conversation["id"], "Hello") as stream:
        original = stream.all()
    mid = original[0].data["message_id"]
    with reattach(api, mid) as replay:
        again = replay.all()
    assert [(e.id, e.event, e.data) for e in again] == [(e.id, e.event, e.data) for e in original]


def test_a_reattach_with_the_id_of_done_is_told_it_is_done_not_interrupted(api, conversation):
    with send(api, conversation["id"], "Hello") as stream:
        original = stream.all()
    mid = original[0].data["message_id"]
    with reattach(api, mid, original[-1].id) as rest:
        after_done = rest.all()
    assert [(e.event, e.data) for e in after_done] == [("done", original[-1].data)]
    assert stored(mid).status == "complete"
    with reattach(api, mid) as replay:  # and the log was left as it was
        assert [e.id for e in replay.all()] == [e.id for e in original]


def test_it_sends_a_snapshot_when_the_events_asked_for_have_expired(api, conversation, settings):
    settings.CHAT_EVENT_LOG_TTL_SECONDS = 0
    with send(api, conversation["id"], "Hello") as stream:
        original = stream.all()
    mid = original[0].data["message_id"]
    wait_until(lambda: log_expired(mid), what="the log's expiry")
    with reattach(api, mid, original[1].id) as rest:
        snapshot, done = rest.all()
    assert (snapshot.id, snapshot.event) == (f"{mid}:2", "snapshot")
    assert snapshot.data == {"message_id": mid, "text": stored(mid).content}
    assert len(snapshot.data["text"]) > len(original[1].data["text"])
    assert (done.id, done.event, done.data) == (f"{mid}:3", "done", original[-1].data)


def test_it_replays_an_expired_reply_from_the_start_whole(api, conversation, settings):
    settings.CHAT_EVENT_LOG_TTL_SECONDS = 0
    with send(api, conversation["id"], "Hello") as stream:
        original = stream.all()
    mid = original[0].data["message_id"]
    wait_until(lambda: log_expired(mid), what="the log's expiry")
    with reattach(api, mid) as replay:
        start, delta, done = replay.all()
    assert [start.event, delta.event, done.event] == ["start", "delta", "done"]
    assert start.data == original[0].data
    assert delta.data["text"] == text_of(original) == stored(mid).content


def test_an_expired_failed_reply_keeps_its_real_error_code(api, conversation, settings):
    settings.CHAT_EVENT_LOG_TTL_SECONDS = 0
    with send(api, conversation["id"], "fail please") as stream:
        original = stream.all()
    mid = original[0].data["message_id"]
    assert stored(mid).error_code == "fake_failure"
    wait_until(lambda: log_expired(mid), what="the log's expiry")
    with reattach(api, mid, original[1].id) as rest:
        snapshot, error = rest.all()
    assert snapshot.data["text"] == text_of(original)
    assert error.event == "error"
    assert error.data == original[-1].data


def test_a_second_tab_sees_the_same_live_reply(api, conversation):
    with send(api, conversation["id"], "Hello") as stream:
        start = next(stream)
        with reattach(api, start.data["message_id"]) as second:
            seen_by_second = second.all()
        seen_by_first = [start, *stream.all()]
    assert text_of(seen_by_first) == text_of(seen_by_second)
    assert seen_by_second[-1].event == "done"


def test_it_stops_a_reply_quickly_and_keeps_the_partial_text(api, conversation, settings):
    settings.CHAT_FAKE_TOKENS_PER_SECOND = 10
    with send(api, conversation["id"], "Hello") as stream:
        seen = stream.until("delta")
        mid = seen[0].data["message_id"]
        assert api.post(f"/api/messages/{mid}/stop").status_code == 202
        rest = stream.all()
    assert rest[-1].event == "done"
    assert rest[-1].data["status"] == "stopped"
    message = wait_for_status(mid)
    assert message.status == "stopped"
    assert message.content == text_of(seen + rest) != ""
    assert len(message.content.split()) < 40


def test_stopping_ends_every_listeners_stream(api, conversation, settings):
    settings.CHAT_FAKE_TOKENS_PER_SECOND = 10
    with send(api, conversation["id"], "Hello") as stream:
        mid = next(stream).data["message_id"]
        with reattach(api, mid) as second:
            next(second)
            api.post(f"/api/messages/{mid}/stop")
            assert second.all()[-1].data["status"] == "stopped"
        assert stream.all()[-1].data["status"] == "stopped"


def test_it_keeps_writing_through_the_grace_period_for_a_reattach(api, conversation, settings):
    settings.CHAT_FAKE_TOKENS_PER_SECOND = 20
    settings.CHAT_DISCONNECT_GRACE_SECONDS = 20
    with send(api, conversation["id"], "Hello") as stream:
        first = stream.until("delta")
    mid = first[0].data["message_id"]
    # Written on with nobody listening: a checkpoint stores more than the client saw.
    wait_until(lambda: len(stored(mid).content) > len(text_of(first)), what="more text")
    with reattach(api, mid, first[-1].id) as rest:
        remaining = rest.all()
    assert remaining[-1].data["status"] == "complete"
    assert text_of(first) + text_of(remaining) == stored(mid).content


def test_an_abandoned_reply_stops_after_the_grace_period(api, conversation, settings):
    settings.CHAT_FAKE_TOKENS_PER_SECOND = 5  # eight seconds in all
    settings.CHAT_DISCONNECT_GRACE_SECONDS = 3
    with send(api, conversation["id"], "Hello") as stream:
        seen = stream.until("delta")
    mid = seen[0].data["message_id"]
    # A second's worth of words more than the client saw: it wrote on through the grace.
    wanted = len(text_of(seen).split()) + 5
    wait_until(lambda: len(stored(mid).content.split()) >= wanted, what="writing on")
    message = wait_for_status(mid, timeout=15)
    assert message.status == "stopped"
    assert len(message.content.split()) < 40


def test_with_zero_grace_an_abandoned_reply_stops_at_once(api, conversation, settings):
    settings.CHAT_FAKE_TOKENS_PER_SECOND = 10
    settings.CHAT_DISCONNECT_GRACE_SECONDS = 0
    with send(api, conversation["id"], "Hello") as stream:
        mid = stream.until("delta")[0].data["message_id"]
    message = wait_for_status(mid, timeout=10)  # a four-second reply: not run to its end
    assert message.status == "stopped"


def test_it_sends_keepalive_comments_while_nothing_else_goes_out(api, conversation, settings):
    settings.CHAT_FAKE_TOKENS_PER_SECOND = 2
    settings.CHAT_FAKE_TOKENS = 3
    settings.CHAT_KEEPALIVE_SECONDS = 0.2
    with send(api, conversation["id"], "Hello") as stream:
        stream.all()
    assert "keepalive" in stream.comments


def test_it_coalesces_fast_tokens_into_fewer_deltas(api, conversation, settings):
    settings.CHAT_FAKE_TOKENS_PER_SECOND = 2000
    settings.CHAT_FAKE_TOKENS = 400
    with send(api, conversation["id"], "Hello") as stream:
        events = stream.all()
    deltas = [e for e in events if e.event == "delta"]
    assert len(deltas) < 100
    assert deltas[0].data["text"] == "The", "the first token should go out alone, at once"
    assert text_of(deltas) == stored(events[0].data["message_id"]).content
    assert len(text_of(deltas).split()) == 400


def test_it_checkpoints_the_text_while_streaming(api, conversation, settings):
    settings.CHAT_FAKE_TOKENS_PER_SECOND = 10
    with send(api, conversation["id"], "Hello") as stream:
        mid = next(stream).data["message_id"]
        stream.until("delta")
        # A checkpoint may come right after the first token: wait for one after the second.
        midway = wait_until(
            lambda: (m := stored(mid)).content.startswith("The quick") and m, what="a checkpoint"
        )
        api.post(f"/api/messages/{mid}/stop")
        stream.all()
    assert midway.status == "streaming"
    assert midway.content.startswith("The quick")


def test_a_failed_reply_sends_an_error_event_and_keeps_the_partial_text(api, conversation):
    with send(api, conversation["id"], "fail please") as stream:
        events = stream.all()
    assert events[-1].event == "error"
    assert events[-1].data["code"] == "fake_failure"
    message = stored(events[0].data["message_id"])
    assert message.status == "failed"
    assert message.error == events[-1].data["message"]
    assert message.content == text_of(events) != ""


def test_deleting_a_conversation_stops_its_reply(api, conversation, settings):
    settings.CHAT_FAKE_TOKENS_PER_SECOND = 10
    with send(api, conversation["id"], "Hello") as stream:
        mid = stream.until("delta")[0].data["message_id"]
        assert api.delete(f"/api/conversations/{conversation['id']}").status_code == 204
        end = stream.all()[-1]
    assert (end.event, end.data["status"]) == ("done", "stopped")
    assert not Message.objects.filter(pk=mid).exists()


def test_it_refuses_a_second_reply_while_one_is_streaming(api, conversation, settings):
    settings.CHAT_FAKE_TOKENS_PER_SECOND = 10
    with send(api, conversation["id"], "Hello") as stream:
        mid = next(stream).data["message_id"]
        second = api.post(
            f"/api/conversations/{conversation['id']}/messages", json={"content": "again"}
        )
        assert second.status_code == 409
        assert second.json()["error"]["code"] == "reply_in_progress"
        api.post(f"/api/messages/{mid}/stop")
        stream.all()
    assert Message.objects.filter(content="again").count() == 0


def test_the_model_sees_the_earlier_turns(api, conversation):
    for text in ("echo first question", "echo second question"):
        with send(api, conversation["id"], text) as stream:
            stream.all()
    detail = api.get(f"/api/conversations/{conversation['id']}").json()
    roles = [m["role"] for m in detail["messages"]]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert detail["messages"][3]["content"] == "second question"


def test_replace_last_regenerates_the_last_reply(api, conversation):
    for text in ("echo one", "echo two"):
        with send(api, conversation["id"], text) as stream:
            stream.all()
    with send(api, conversation["id"], "echo two, edited", replace_last=True) as stream:
        assert stream.all()[-1].data["status"] == "complete"
    detail = api.get(f"/api/conversations/{conversation['id']}").json()
    assert [m["content"] for m in detail["messages"]] == [
        "echo one",
        "one",
        "echo two, edited",
        "two, edited",
    ]


def test_the_reaper_fails_replies_nobody_is_writing(alice):
    import asyncio
    from datetime import timedelta

    from django.utils import timezone

    from chat.models import Conversation
    from chat.runs.eventlog.memory import MemoryEventLog
    from chat.runs.registry import RunRegistry

    conversation = Conversation.objects.create(owner=alice, model="fake")
    orphan = conversation.messages.create(role="assistant", status="streaming", content="Half")
    young = conversation.messages.create(role="assistant", status="streaming")
    Message.objects.filter(pk=orphan.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    reaped = asyncio.run(RunRegistry(MemoryEventLog()).reap())
    assert reaped == 1
    orphan.refresh_from_db()
    assert (orphan.status, orphan.content) == ("failed", "Half")
    assert "restarted" in orphan.error
    assert orphan.error_code == "interrupted"
    assert Message.objects.get(pk=young.pk).status == "streaming", "a just-started reply was reaped"


async def test_the_server_takes_a_streams_frames_as_they_come():
    from chat.views.stream import event_stream_response

    async def frames():
        yield b"id: 1:0\n\n"
        yield b"id: 1:1\n\n"

    made = frames()
    response = event_stream_response(made)
    assert aiter(response) is made  # no generators of Django's in between
    assert [frame async for frame in aiter(response)] == [b"id: 1:0\n\n", b"id: 1:1\n\n"]


async def test_a_stream_whose_frames_a_middleware_replaced_sends_the_new_ones():
    from chat.views.stream import event_stream_response

    async def frames(parts):
        for part in parts:
            yield part

    response = event_stream_response(frames([b"old"]))
    response.streaming_content = frames(["new"])
    assert [frame async for frame in aiter(response)] == [b"new"]
