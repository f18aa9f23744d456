"""Bodies and shapes an attacker would try, against the live server (chat.bodylimit,
chat.safejson, chat.schema): each gets its 4xx at once, and nothing is stored."""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest

from chat.models import Conversation, Message

TWO_GB = 2 * 1024**3


def raw_request(base_url: str, head: str, body_chunks=(), timeout: float = 30) -> bytes:
    """Send `head` (and `body_chunks`) over a plain socket; the response's first bytes."""
    url = urlsplit(base_url)
    with socket.create_connection((url.hostname, url.port), timeout=timeout) as sock:
        sock.sendall(head.encode())
        for chunk in body_chunks:
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break  # the server answered and closed: what we want to read
        return _read_head(sock)


def _read_head(sock: socket.socket) -> bytes:
    received = b""
    deadline = time.monotonic() + 10
    while b"\r\n\r\n" not in received or not received.endswith(b"}"):
        assert time.monotonic() < deadline, f"no answer, only {received!r}"
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += chunk
    return received


def status_and_json(response: bytes) -> tuple[int, dict]:
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if body else {}


def head(path: str, length: int | None = None, extra: str = "") -> str:
    size = f"Content-Length: {length}\r\n" if length is not None else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"{size}{extra}\r\n"
    )


@pytest.mark.parametrize("path", ["/api/conversations", "/api/import", "/v1/chat/completions"])
def test_it_refuses_an_announced_2_gb_body_without_reading_it(
    live_server_url, transactional_db, path
):
    # Only the head is sent: a server waiting for the 2 GB would never answer.
    status, body = status_and_json(raw_request(live_server_url, head(path, TWO_GB)))
    assert status == 413
    assert body["error"]["code"] == "content_too_large"


def test_it_refuses_a_2_gb_import_from_a_signed_in_user_too(api):
    key = api.headers["Authorization"]
    response = raw_request(
        api.base_url.__str__(), head("/api/import", TWO_GB, f"Authorization: {key}\r\n")
    )
    assert status_and_json(response)[0] == 413


def test_it_cuts_a_chunked_body_at_the_limit(api, settings):
    settings.CHAT_MAX_BODY_BYTES = 64 * 1024
    key = api.headers["Authorization"]
    piece = b" " * 16 * 1024
    chunks = [b"%x\r\n%s\r\n" % (len(piece), piece)] * 16  # 256 KiB, never finished
    request = head(
        "/api/conversations", None, f"Authorization: {key}\r\nTransfer-Encoding: chunked\r\n"
    )
    status, body = status_and_json(raw_request(str(api.base_url), request, chunks))
    assert (status, body["error"]["code"]) == (413, "content_too_large")
    assert not Conversation.objects.exists()


def test_a_body_within_the_limit_still_works(api, settings):
    settings.CHAT_MAX_BODY_BYTES = 64 * 1024
    response = api.post("/api/conversations", json={"title": "x" * 100})
    assert response.status_code == 201


def test_it_reads_an_import_only_from_someone_signed_in(live_server_url, transactional_db):
    # 50 MB is within the import limit, but nobody is signed in: refused before reading.
    request = head("/api/import", 50 * 1024**2, "Cookie: sessionid=forged\r\n")
    status, body = status_and_json(raw_request(live_server_url, request))
    assert (status, body["error"]["code"]) == (401, "unauthorized")


def test_a_json_body_holds_the_longest_message_in_the_worst_encoding(api, conversation, settings):
    settings.CHAT_FAKE_TOKENS = 1
    content = "😀" * settings.CHAT_MAX_CONTENT_CHARS  # 12 bytes each, escaped
    body = json.dumps({"content": content, "model": "fake"}).encode()
    response = api.post(f"/api/conversations/{conversation['id']}/messages", content=body)
    assert response.status_code == 200
    response.read()


def nested(depth: int) -> bytes:
    return b'{"a":' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/api/conversations", "invalid_json"),
        ("/v1/chat/completions", "invalid_json"),
        ("/api/import", "invalid_import"),
    ],
)
def test_100000_levels_of_nesting_are_a_400(api, path, code):
    response = api.post(path, content=nested(100_000))
    assert (response.status_code, response.json()["error"]["code"]) == (400, code)
    assert "nested" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "content",
    [b'"nul \\u0000 here"', b'"half \\ud800 a pair"', b'"\xed\xa0\x80"', b'"\xff\xfe"'],
)
def test_strings_that_are_not_text_are_a_400(api, conversation, content):
    body = b'{"content": ' + content + b"}"
    response = api.post(f"/api/conversations/{conversation['id']}/messages", content=body)
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_json")
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"title": ["x"]}, "invalid_field"),
        ({"title": "x", "system_prompt": {"a": 1}}, "invalid_field"),
        ({"model": 7}, "unknown_model"),
        ({"title": "x" * 201}, "content_too_large"),
    ],
)
def test_wrong_types_anywhere_are_refused_with_their_code(api, body, code):
    response = api.post("/api/conversations", json=body)
    assert response.json()["error"]["code"] == code
    assert response.status_code == (413 if code == "content_too_large" else 400)
    assert not Conversation.objects.exists()


def test_a_huge_id_is_a_404_not_a_500(api):
    response = api.get(f"/api/conversations/{2**70}")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")


@pytest.mark.parametrize(
    "address",
    ["/api/conversations?q=a%00b", "/admin/chat/conversation/?q=%00", "/signup/?invitation=%00"],
)
def test_a_nul_in_the_address_is_a_400_not_a_500(api, address):
    response = api.get(address)
    assert (response.status_code, response.json()["error"]["code"]) == (400, "bad_request")
    assert api.get("/api/conversations?q=ab").status_code == 200  # and the server is fine


def test_an_unknown_api_address_is_a_json_404(api):
    response = httpx.get(f"{api.base_url}/api/nothing-here")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")


def test_no_body_a_stranger_may_send_is_large_enough_to_be_spooled_to_disk(settings):
    from chat.bodylimit import LARGER_BODIES, SIGNED_IN_ONLY, limit_for

    open_to_anyone = ["/login/", "/signup/", "/api/conversations"]
    open_to_anyone += [path for path in LARGER_BODIES if path not in SIGNED_IN_ONLY]
    # Django keeps a body (and a multipart file) in memory up to this size.
    assert max(limit_for(path) for path in open_to_anyone) <= settings.FILE_UPLOAD_MAX_MEMORY_SIZE


@pytest.mark.parametrize(
    "headers", [[], [(b"content-length", b"12")]], ids=["no body", "a body of known length"]
)
async def test_a_request_with_nothing_to_count_talks_to_the_server_directly(headers):
    # The server frames such a body by its length, checked already: no wrapper slows each
    # frame of a stream on its way out.
    from chat.bodylimit import BodyLimitMiddleware

    seen = []

    async def app(scope, receive, send):
        seen.append((receive, send))

    async def receive():
        return {"type": "http.request", "body": b"{}"}

    async def send(message):
        pass

    scope = {"type": "http", "path": "/api/conversations", "headers": headers}
    await BodyLimitMiddleware(app)(scope, receive, send)
    assert seen == [(receive, send)]
