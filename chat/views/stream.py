"""The streaming endpoints: send a message and watch the reply, reattach, stop."""

import contextlib
from collections.abc import AsyncIterator

from django.http import JsonResponse, StreamingHttpResponse

from chat import branches, replies
from chat.events import KEEPALIVE, Event, parse_event_id
from chat.schema import bodies

from .endpoint import api_endpoint, read_json_async


class EventStreamResponse(StreamingHttpResponse):
    """Server-Sent Events frames, ready-made bytes, as text/event-stream, unbuffered."""

    def __init__(self, frames: AsyncIterator[bytes]):
        super().__init__(frames, content_type="text/event-stream")
        self.frames = frames
        self["Cache-Control"] = "no-cache"
        self["X-Accel-Buffering"] = "no"

    def __aiter__(self):
        # The handler's loop takes the frames as they come. Django's own __aiter__ puts two
        # generators in between, one for sync iterators and one to make bytes, and they
        # cost as much as the rest of a frame's way to the socket; here they do nothing.
        if self.is_async and self._iterator is self.frames:
            return self.frames
        return super().__aiter__()  # a middleware replaced the content: Django's way


def event_stream_response(frames: AsyncIterator[bytes]) -> StreamingHttpResponse:
    """Server-Sent Events frames as text/event-stream, unbuffered."""
    return EventStreamResponse(frames)


def sse_response(events: AsyncIterator[Event | None]) -> StreamingHttpResponse:
    """Events as text/event-stream, with keepalive comments while idle."""

    async def frames():
        # aclosing: a client that leaves must count as a listener leaving, at once.
        async with contextlib.aclosing(events):
            async for event in events:
                yield KEEPALIVE if event is None else event.sse()

    return event_stream_response(frames())


@api_endpoint("POST")
async def send_message(request, conversation_id: int):
    body = await read_json_async(request, bodies.new_message())
    run = await replies.start_reply(
        request.api_user,
        conversation_id,
        body.get("content"),
        body.get("model"),
        parent=branches.check_parent_id(body),
    )
    return sse_response(await replies.follow_run(run))


@api_endpoint("POST")
async def regenerate_message(request, message_id: int):
    body = await read_json_async(request, bodies.regenerate())
    run = await replies.regenerate_reply(request.api_user, message_id, body.get("model"))
    return sse_response(await replies.follow_run(run))


@api_endpoint("GET")
async def message_stream(request, message_id: int):
    raw = request.headers.get("Last-Event-ID") or request.GET.get("last_event_id")
    after = parse_event_id(raw, message_id)
    return sse_response(await replies.follow_reply(request.api_user, message_id, after))


@api_endpoint("POST")
async def stop_message(request, message_id: int):
    stopping = await replies.stop_reply(request.api_user, message_id)
    return JsonResponse({"message_id": message_id, "stopping": stopping}, status=202)
