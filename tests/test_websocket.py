"""The websocket door: the same events, session auth and stop as the SSE API, and its bounds."""

import asyncio
import json

import httpx
import pytest
import websockets
from asgiref.sync import sync_to_async

from chat.consumers import MAX_FOLLOWS
from chat.models import Message
from tests.conftest import log_expired

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alice_cookie(client, alice):
    client.force_login(alice)
    return client.cookies["sessionid"].value


def connect(live_server_url: str, conversation_id: int, cookie: str | None):
    url = live_server_url.replace("http://", "ws://") + f"/ws/conversations/{conversation_id}/"
    headers = {"Origin": live_server_url}
    if cookie:
        headers["Cookie"] = f"sessionid={cookie}"
    return websockets.connect(url, additional_headers=headers, open_timeout=5)


async def receive_until_end(ws) -> list[dict]:
    seen = []
    while not seen or seen[-1]["type"] not in ("done", "error"):
        seen.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
    return seen


def text_of(messages: list[dict]) -> str:
    return "".join(m["text"] for m in messages if m["type"] == "delta")


async def stored(message_id: int) -> Message:
    return await sync_to_async(Message.objects.get)(pk=message_id)


async def test_it_streams_a_reply_over_the_websocket(live_server_url, alice_cookie, conversation):
    async with connect(live_server_url, conversation["id"], alice_cookie) as ws:
        await ws.send(json.dumps({"type": "send", "content": "Hello"}))
        seen = await receive_until_end(ws)
    start, done = seen[0], seen[-1]
    assert start["type"] == "start" and start["conversation_id"] == conversation["id"]
    assert done["type"] == "done" and done["status"] == "complete"
    assert [m["id"] for m in seen] == [f"{start['message_id']}:{i}" for i in range(len(seen))]
    assert text_of(seen) == (await stored(start["message_id"])).content


async def test_it_stops_a_reply_over_the_websocket(
    live_server_url, alice_cookie, conversation, settings
):
    settings.CHAT_FAKE_TOKENS_PER_SECOND = 10
    async with connect(live_server_url, conversation["id"], alice_cookie) as ws:
        await ws.send(json.dumps({"type": "send", "content": "Hello"}))
        start = json.loads(await ws.recv())
        json.loads(await ws.recv())  # the first delta
        await ws.send(json.dumps({"type": "stop", "message_id": start["message_id"]}))
        seen = await receive_until_end(ws)
    assert seen[-1]["status"] == "stopped"
    message = await stored(start["message_id"])
    assert message.status == "stopped" and len(message.content.split()) < 40


async def test_it_reattaches_after_the_last_event_id(
    live_server_url, alice_cookie, conversation, settings
):
    settings.CHAT_FAKE_TOKENS_PER_SECOND = 20
    async with connect(live_server_url, conversation["id"], alice_cookie) as ws:
        await ws.send(json.dumps({"type": "send", "content": "Hello"}))
        first = [json.loads(await ws.recv()) for _ in range(3)]
    mid = first[0]["message_id"]
    async with connect(live_server_url, conversation["id"], alice_cookie) as ws:
        follow = {"type": "follow", "message_id": mid, "last_event_id": first[-1]["id"]}
        await ws.send(json.dumps(follow))
        rest = await receive_until_end(ws)
    assert rest[0]["id"] == f"{mid}:3"
    assert text_of(first) + text_of(rest) == (await stored(mid)).content


async def test_a_follow_after_the_log_expired_gets_a_snapshot(
    live_server_url, alice_cookie, conversation, settings
):
    settings.CHAT_EVENT_LOG_TTL_SECONDS = 0
    async with connect(live_server_url, conversation["id"], alice_cookie) as ws:
        await ws.send(json.dumps({"type": "send", "content": "Hello"}))
        original = await receive_until_end(ws)
        mid = original[0]["message_id"]
        await wait_until_async(lambda: log_expired(mid))
        follow = {"type": "follow", "message_id": mid, "last_event_id": original[1]["id"]}
        await ws.send(json.dumps(follow))
        snapshot, done = await receive_until_end(ws)
    assert snapshot == {
        "type": "snapshot",
        "id": f"{mid}:2",
        "message_id": mid,
        "text": (await stored(mid)).content,
    }
    assert (done["type"], done["status"]) == ("done", "complete")


async def wait_until_async(condition, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "the condition never came true"
        await asyncio.sleep(0.02)


async def test_bad_input_gets_an_error_message_not_a_crash(
    live_server_url, alice_cookie, conversation
):
    async with connect(live_server_url, conversation["id"], alice_cookie) as ws:
        await ws.send(json.dumps({"type": "send", "content": ""}))
        assert json.loads(await ws.recv())["code"] == "empty_content"
        await ws.send(json.dumps({"type": "dance"}))
        assert json.loads(await ws.recv())["code"] == "bad_type"


async def test_it_refuses_a_visitor_without_a_session(live_server_url, conversation):
    with pytest.raises(websockets.exceptions.InvalidStatus):
        async with connect(live_server_url, conversation["id"], None):
            pass


@pytest.fixture
def bob_cookie(client, bob):
    client.force_login(bob)
    return client.cookies["sessionid"].value


async def test_it_refuses_another_users_conversation(live_server_url, bob_cookie, conversation):
    with pytest.raises(websockets.exceptions.InvalidStatus):
        async with connect(live_server_url, conversation["id"], bob_cookie):
            pass


async def closed_code(ws) -> int:
    """The close code the server ends `ws` with (fails if it sends a message instead)."""
    with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
        message = await asyncio.wait_for(ws.recv(), 10)
        pytest.fail(f"the socket stayed open and answered {message}")
    return closed.value.rcvd.code


async def still_answers(ws) -> None:
    await ws.send(json.dumps({"type": "dance"}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 10))["code"] == "bad_type"


async def log_out_over_http(live_server_url: str, client) -> None:
    """POST /logout/ with the browser's session and CSRF cookies, as its page would."""
    await sync_to_async(client.get)("/account/")  # sets the CSRF cookie
    cookies = {name: morsel.value for name, morsel in client.cookies.items()}
    headers = {"X-CSRFToken": cookies["csrftoken"], "Origin": live_server_url}
    async with httpx.AsyncClient(base_url=live_server_url, cookies=cookies) as http:
        response = await http.post("/logout/", headers=headers)
    assert response.status_code == 302, response.text


async def test_a_socket_is_closed_on_its_next_message_once_its_session_logs_out(
    live_server_url, client, alice_cookie, conversation
):
    async with connect(live_server_url, conversation["id"], alice_cookie) as ws:
        await still_answers(ws)
        await log_out_over_http(live_server_url, client)
        await ws.send(json.dumps({"type": "send", "content": "Still here?"}))
        assert await closed_code(ws) == 4401
    assert not await sync_to_async(Message.objects.filter(content="Still here?").exists)()


@pytest.mark.parametrize("change", ["deactivated", "password_changed"])
async def test_a_socket_is_closed_on_its_next_message_once_its_user_is_shut_out(
    live_server_url, alice, alice_cookie, conversation, change
):
    async with connect(live_server_url, conversation["id"], alice_cookie) as ws:
        await still_answers(ws)
        if change == "deactivated":
            alice.is_active = False
        else:
            alice.set_password("a brand new password")
        await sync_to_async(alice.save)()
        await ws.send(json.dumps({"type": "dance"}))
        assert await closed_code(ws) == 4401


async def test_follows_per_connection_are_bounded(
    live_server_url, alice_cookie, conversation, settings
):
    settings.CHAT_FAKE_TOKENS_PER_SECOND = 5
    async with connect(live_server_url, conversation["id"], alice_cookie) as ws:
        await ws.send(json.dumps({"type": "send", "content": "Hello"}))
        mid = json.loads(await ws.recv())["message_id"]
        follow = json.dumps({"type": "follow", "message_id": mid})
        for _ in range(MAX_FOLLOWS + 1):
            await ws.send(follow)
        seen = []
        while not any(m.get("code") == "too_many_follows" for m in seen):
            seen.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
        assert sum(m["type"] == "start" for m in seen) <= MAX_FOLLOWS

        # Once the reply ends, so do its follows, and there is room again.
        await ws.send(json.dumps({"type": "stop", "message_id": mid}))
        ended = sum(m["type"] == "done" for m in seen)
        while ended < MAX_FOLLOWS + 1:  # the send's stream and every follow
            ended += json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "done"
        await ws.send(follow)
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "start"
