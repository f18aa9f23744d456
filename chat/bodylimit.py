"""Request bodies over their limit are refused in the ASGI layer, before Django reads them;
and so are addresses with a NUL character in them.

Django's ASGI handler reads a whole body (into a file on disk past
FILE_UPLOAD_MAX_MEMORY_SIZE) before any middleware or view runs, so a limit checked
in a view comes too late. This wrapper answers `413 content_too_large` at once when the
announced Content-Length is over the path's limit, counts a chunked body as it arrives
and cuts it at the limit, and lets only a signed-in user send the large bodies an
import takes. It is plain async code: no thread, except for that sign-in check.
"""

from __future__ import annotations

import asyncio
import json
from http.cookies import SimpleCookie
from importlib import import_module
from types import SimpleNamespace
from urllib.parse import quote

from django.conf import settings
from django.contrib import auth
from django.shortcuts import resolve_url

from chat.auth import user_for_key
from chat.db import reads

# Paths whose bodies may be larger than CHAT_MAX_BODY_BYTES, and the setting that says how.
LARGER_BODIES = {
    "/api/import": "CHAT_IMPORT_MAX_BYTES",
    "/account/import": "CHAT_IMPORT_MAX_BYTES",
    "/v1/chat/completions": "CHAT_COMPLETION_MAX_BODY_BYTES",
}
# After a refusal, what the client still sends is read and dropped up to these bounds.
DRAIN_BYTES = 16 * 1024 * 1024
DRAIN_SECONDS = 5
# Bodies this large are read only for someone signed in.
SIGNED_IN_ONLY = {"/api/import", "/account/import"}


def limit_for(path: str) -> int:
    """The most bytes a request body to `path` may have."""
    return getattr(settings, LARGER_BODIES.get(path, "CHAT_MAX_BODY_BYTES"))


class BodyLimitMiddleware:
    """ASGI middleware: no body over its path's limit ever reaches the app."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, headers = scope["path"], dict(scope["headers"])
        if _holds_nul(scope):
            message = "The address holds a NUL character (%00), which no text can hold."
            return await _send_error(send, receive, path, 400, "bad_request", message)
        limit = limit_for(path)
        length = _content_length(headers)
        if length is not None and length > limit:
            return await _send_refusal(send, receive, path, limit)
        chunked = b"transfer-encoding" in headers
        if (length or chunked) and path in SIGNED_IN_ONLY and not await _signed_in(headers):
            return await _send_unauthorized(send, receive, path)
        if not chunked:
            # The server frames the body by its Content-Length, already checked (none: no
            # body): nothing to count, and the app talks to the server directly, with no
            # wrapper on each of a stream's frames.
            return await self.app(scope, receive, send)
        await _CountedRequest(self.app, scope, receive, send, limit).run()


class _CountedRequest:
    """One request whose body is counted as it arrives; past the limit the app is cut off."""

    def __init__(self, app, scope, receive, send, limit: int):
        self.app, self.scope, self._receive, self._send = app, scope, receive, send
        self.limit, self.received, self.refused = limit, 0, False

    async def run(self):
        await self.app(self.scope, self.receive, self.send)

    async def receive(self):
        if self.refused:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                # Answer now; to the app the client has gone, so it gives up the request.
                self.refused = True
                await _send_refusal(self._send, self._receive, self.scope["path"], self.limit)
                return {"type": "http.disconnect"}
        return message

    async def send(self, message):
        if not self.refused:
            await self._send(message)


async def _drain(receive):
    """Read and drop what the client is still sending after a refusal, for a little while.

    A connection closed with unread bytes in its buffer is reset, and the reset can wipe
    the refusal from the client's buffer before it reads it: the client would see a broken
    connection instead of a 413. A client that goes on sending past the bound is cut off.
    """
    dropped = 0
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            while dropped < DRAIN_BYTES:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body"):
                    return
                dropped += len(message.get("body", b""))
    except TimeoutError:
        pass


def _holds_nul(scope) -> bool:
    """Whether the path or the query string decodes to a NUL, which PostgreSQL cannot store
    or even compare: a search, a token or an admin filter with one would be a 500."""
    return "\x00" in scope["path"] or b"%00" in scope.get("query_string", b"")


def _content_length(headers: dict) -> int | None:
    raw = headers.get(b"content-length")
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None  # the server refuses such a request before it gets here


@reads
def _signed_in(headers: dict) -> bool:
    """Whether the request carries a valid API key or a signed-in session (CSRF comes later)."""
    scheme, _, raw = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    if scheme.lower() == "bearer" and raw.strip():
        return user_for_key(raw.strip()) is not None
    cookies = SimpleCookie(headers.get(b"cookie", b"").decode("latin-1"))
    morsel = cookies.get(settings.SESSION_COOKIE_NAME)
    if morsel is None:
        return False
    session = import_module(settings.SESSION_ENGINE).SessionStore(morsel.value)
    return auth.get_user(SimpleNamespace(session=session)).is_authenticated


async def _send_refusal(send, receive, path: str, limit: int):
    message = f"The request body is over the limit of {limit} bytes for {path}."
    await _send_error(send, receive, path, 413, "content_too_large", message)


async def _send_unauthorized(send, receive, path: str):
    if path.startswith("/api/"):
        message = "Sign in, or send 'Authorization: Bearer <key>'."
        return await _send_error(send, receive, path, 401, "unauthorized", message)
    login = f"{resolve_url(settings.LOGIN_URL)}?next={quote(path)}"
    await _respond(send, receive, 302, b"", [(b"location", login.encode())])


async def _send_error(send, receive, path: str, status: int, code: str, message: str):
    if path.startswith("/v1/"):
        kind = "invalid_request_error"
        body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        extra = [(b"x-should-retry", b"false")]
    else:
        body, extra = {"error": {"code": code, "message": message}}, []
    content = json.dumps(body).encode()
    await _respond(send, receive, status, content, [(b"content-type", b"application/json"), *extra])


async def _respond(send, receive, status: int, content: bytes, headers: list):
    """Answer, and close the connection: the unread rest of the body makes it unusable.

    The response is ended only after what the client still sends is drained (the server
    stops reading the body once a response is complete).
    """
    headers = [*headers, (b"content-length", str(len(content)).encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content, "more_body": True})
    await _drain(receive)
    await send({"type": "http.response.body", "body": b""})
