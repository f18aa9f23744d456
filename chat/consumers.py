"""The websocket door to a conversation: the same events and use-cases as the SSE API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from chat import branches, db, replies
from chat.auth import session_user
from chat.db import reads
from chat.errors import BadRequest, ChatError
from chat.events import Event, parse_event_id

UNAUTHENTICATED = 4401
NOT_FOUND = 4404
# Each follow holds a listener on a reply; a socket may not pile them up.
MAX_FOLLOWS = 8


class ConversationConsumer(AsyncJsonWebsocketConsumer):
    """`/ws/conversations/{id}/`: send a message, follow its reply, stop it."""

    async def connect(self):
        self.user = self.scope["user"]
        self.conversation_id = self.scope["url_route"]["kwargs"]["conversation_id"]
        self.pumps: set[asyncio.Task] = set()
        self.follows: set[asyncio.Task] = set()
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

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        # A socket outlives the page that opened it: each message is checked afresh.
        if not await self._still_signed_in():
            await self.disconnect(UNAUTHENTICATED)
            await self.close(code=UNAUTHENTICATED)
            return
        await super().receive(text_data, bytes_data, **kwargs)

    async def receive_json(self, content, **kwargs):
        handlers = {"send": self._send, "stop": self._stop, "follow": self._follow}
        kind = content.get("type") if isinstance(content, dict) else None
        try:
            if kind not in handlers:
                raise BadRequest("Send a message of type send, stop or follow.", code="bad_type")
            await handlers[kind](content)
        except ChatError as error:
            await self.send_json({"type": "error", **error.as_dict()})

    async def _still_signed_in(self) -> bool:
        """Whether the session is still this user's: not logged out, user still active."""
        session_key = self.scope["session"].session_key
        return (await reads(session_user)(session_key)).pk == self.user.pk

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
        if len(self.follows) >= MAX_FOLLOWS:
            raise BadRequest(
                f"This connection already follows {MAX_FOLLOWS} replies; wait for one to end.",
                code="too_many_follows",
            )
        task = self._pump(await replies.follow_reply(self.user, message_id, after))
        self.follows.add(task)
        task.add_done_callback(self.follows.discard)

    def _pump(self, events: AsyncIterator[Event | None]) -> asyncio.Task:
        task = asyncio.create_task(self._forward(events))
        self.pumps.add(task)
        task.add_done_callback(self.pumps.discard)
        return task

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
