"""The websocket door to a conversation: the same events and use-cases as the SSE API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from chat import branches, db, replies
from chat.errors import BadRequest, ChatError
from chat.events import Event, parse_event_id

UNAUTHENTICATED = 4401
NOT_FOUND = 4404


class ConversationConsumer(AsyncJsonWebsocketConsumer):
    """`/ws/conversations/{id}/`: send a message, follow its reply, stop it."""

    async def connect(self):
        self.user = self.scope["user"]
        self.conversation_id = self.scope["url_route"]["kwargs"]["conversation_id"]
        self.pumps: set[asyncio.Task] = set()
        if not self.user.is_authenticated:
            await self.close(code=UNAUTHENTICATED)
            return
        try:
            await db.conversation_for_user(self.user, self.conversation_id)
        except ChatError:
            await self.close(code=NOT_FOUND)
            return
        await self.accept()

    async def disconnect(self, code):
        # Leaving counts as a listener leaving: the grace period starts for the reply.
        for pump in self.pumps:
            pump.cancel()

    async def receive_json(self, content, **kwargs):
        handlers = {"send": self._send, "stop": self._stop, "follow": self._follow}
        kind = content.get("type") if isinstance(content, dict) else None
        try:
            if kind not in handlers:
                raise BadRequest("Send a message of type send, stop or follow.", code="bad_type")
            await handlers[kind](content)
        except ChatError as error:
            await self.send_json({"type": "error", "code": error.code, "message": error.message})

    async def _send(self, content: dict) -> None:
        run = await replies.start_reply(
            self.user,
            self.conversation_id,
            content.get("content"),
            content.get("model"),
            parent=branches.check_parent_id(content),
        )
        self._pump(await replies.follow_run(run))

    async def _stop(self, content: dict) -> None:
        await replies.stop_reply(self.user, _message_id(content))

    async def _follow(self, content: dict) -> None:
        """Reattach to a reply, after the last event id the client saw."""
        message_id = _message_id(content)
        after = parse_event_id(content.get("last_event_id"), message_id)
        self._pump(await replies.follow_reply(self.user, message_id, after))

    def _pump(self, events: AsyncIterator[Event | None]) -> None:
        task = asyncio.create_task(self._forward(events))
        self.pumps.add(task)
        task.add_done_callback(self.pumps.discard)

    async def _forward(self, events: AsyncIterator[Event | None]) -> None:
        async with contextlib.aclosing(events):
            async for event in events:
                if event is not None:  # websockets keep themselves alive
                    await self.send_json(event.ws())


def _message_id(content: dict) -> int:
    value = content.get("message_id")
    if not isinstance(value, int):
        raise BadRequest("'message_id' must be a number.", code="invalid_field")
    return value
