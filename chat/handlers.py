"""The ASGI handler of the JSON API (`/api/`, `/v1/`): Django's, with a middleware chain
that never leaves the event loop.

Under ASGI, Django runs each of the site's sync-capable middlewares (sessions, CSRF,
security headers…) through a thread hop on the way in and another on the way out, a
dozen hops a request. The API needs only what those middlewares do without I/O (lazy
sessions and users, response headers), so its chain (`API_MIDDLEWARE`) runs their hooks
on the loop, and leaves out what the API never uses (messages, static files, django-axes'
log-in lock-out, the /metrics door). Pages and the admin keep the whole of
settings.MIDDLEWARE.
"""

from __future__ import annotations

import functools
import re

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import Resolver404, resolve
from django.utils.module_loading import import_string

from chat.middleware import AsyncMiddleware

PREFIXES = ("/api/", "/v1/")


class InlineMiddleware(AsyncMiddleware):
    """One of Django's MiddlewareMixin middlewares whose hooks do no I/O, run on the loop.

    Subclasses name it in `wrapped`; its process_request and process_response are called
    as they are, so its behaviour is Django's own.
    """

    wrapped: type

    def __init__(self, get_response):
        super().__init__(get_response)
        self.inner = self.wrapped(get_response)

    async def __call__(self, request):
        response = None
        if hasattr(self.inner, "process_request"):
            response = self.inner.process_request(request)
        response = response or await self.get_response(request)
        return self.respond(request, response)

    def respond(self, request, response):
        if hasattr(self.inner, "process_response"):
            return self.inner.process_response(request, response)
        return response


class Security(InlineMiddleware):
    """HTTPS redirect, HSTS, nosniff, referrer and opener policies (SecurityMiddleware)."""

    wrapped = SecurityMiddleware


class Common(InlineMiddleware):
    """Disallowed user agents, slash redirects, Content-Length (CommonMiddleware)."""

    wrapped = CommonMiddleware


class FrameOptions(InlineMiddleware):
    """X-Frame-Options (XFrameOptionsMiddleware)."""

    wrapped = XFrameOptionsMiddleware


class Authentication(InlineMiddleware):
    """`request.user`, looked up lazily: the API's authentication does it off the loop."""

    wrapped = AuthenticationMiddleware


class Sessions(InlineMiddleware):
    """`request.session`, lazy. The API never changes a session, but one that was changed
    is saved as SessionMiddleware saves it, on a thread: that is I/O."""

    wrapped = SessionMiddleware

    async def __call__(self, request):
        self.inner.process_request(request)  # a SessionStore that reads nothing yet
        response = await self.get_response(request)
        session = request.session
        if session.modified or settings.SESSION_SAVE_EVERY_REQUEST:
            return await sync_to_async(self.respond)(request, response)
        return self.respond(request, response)


API_MIDDLEWARE = [
    "chat.handlers.Security",
    "chat.middleware.RequestContextMiddleware",
    "chat.handlers.Sessions",
    "chat.handlers.Common",
    "chat.handlers.Authentication",
    "chat.handlers.FrameOptions",
    "chat.middleware.ContentSecurityPolicyMiddleware",
    "chat.middleware.NoStoreMiddleware",
]
"""In settings.MIDDLEWARE's order, less what the API does not use."""


class ApiHandler(ASGIHandler):
    """Django's ASGI handler over API_MIDDLEWARE: URL resolution, views, error pages as ever.

    Django gives every request a thread-sensitive context, so the first sync call it
    makes starts a thread of its own, and every request makes one as it ends (closing
    the response). An async view's request, a stream's, needs no such thread: it skips
    the context, and that last call runs on asgiref's one shared sync thread. A sync
    view's request keeps it, so that sync views never wait on one another.
    """

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and _async_view(_shape(scope["path"])):
            await self.handle(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    def load_middleware(self, is_async=False):
        # Instead of Django's, which would build settings.MIDDLEWARE's chain (WhiteNoise's
        # scan of the static files included) a second time, only to be thrown away. No view,
        # template-response or exception hooks: none of API_MIDDLEWARE has them (CSRF is
        # checked by chat.auth.authenticate, for sessions only).
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        handler = convert_exception_to_response(self._get_response_async)
        for path in reversed(API_MIDDLEWARE):
            handler = convert_exception_to_response(import_string(path)(handler))
        self._middleware_chain = handler


def _shape(path: str) -> str:
    """The path with its ids (segments of digits) as 0: few shapes, whatever the ids."""
    return _DIGITS.sub("0", path)


_DIGITS = re.compile(r"(?<=/)\d+(?=/|$)")


@functools.lru_cache(maxsize=256)
def _async_view(shape: str) -> bool:
    """Whether the view at this path shape is a coroutine function (False if none is)."""
    try:
        return iscoroutinefunction(resolve(shape).func)
    except Resolver404:
        return False


def by_path(api, pages):
    """An ASGI app that sends the API's paths to `api`, everything else to `pages`."""

    async def app(scope, receive, send):
        chosen = api if scope.get("path", "").startswith(PREFIXES) else pages
        await chosen(scope, receive, send)

    return app
