"""Our middleware: a Content-Security-Policy, no-store, static files without a thread hop,
and the request's id, log line and metrics."""

import asyncio
import logging
import time

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.utils.functional import SimpleLazyObject, empty
from whitenoise.middleware import WhiteNoiseMiddleware

from chat import logs, metrics
from chat.views.metrics import metrics_view

access_log = logging.getLogger("chat.requests")
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

# No 'unsafe-inline' anywhere: pages pass data in data- attributes, never inline scripts
# or styles, so model output that slipped past the sanitiser still could not run, and
# nothing can be loaded from, or sent to, another origin.
POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class HeaderMiddleware:
    """Adds headers to responses, sync and async alike.

    Both, so the streaming views stay on the event loop (Django's MiddlewareMixin would
    hop to a thread for each request). Subclasses implement `add_headers`.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        return self.add_headers(request, self.get_response(request))

    async def _acall(self, request):
        return self.add_headers(request, await self.get_response(request))

    def add_headers(self, request, response):
        raise NotImplementedError


class ContentSecurityPolicyMiddleware(HeaderMiddleware):
    """Add POLICY to every response that does not carry a policy of its own."""

    def add_headers(self, request, response):
        response.headers.setdefault("Content-Security-Policy", POLICY)
        return response


class NoStoreMiddleware(HeaderMiddleware):
    """`Cache-Control: no-store` on the API's answers and the account page.

    They hold conversations and, once, a new API key: no browser or proxy cache may keep
    them. Responses that say otherwise keep their own (event streams send `no-cache`).
    """

    PREFIXES = ("/api/", "/v1/", "/account/")

    def add_headers(self, request, response):
        if request.path.startswith(self.PREFIXES):
            response.headers.setdefault("Cache-Control", "no-store")
        return response


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, without its cost for everything that is not a static file.

    WhiteNoise's middleware is sync only, so under ASGI Django would run every request,
    the streaming API's too, through a thread to reach it. This one is async: it looks
    the path up in WhiteNoise's table (built at start-up) and only a static file's
    response is made in a thread.
    """

    sync_capable = False
    async_capable = True

    def __init__(self, get_response):
        super().__init__(get_response)
        markcoroutinefunction(self)

    async def __call__(self, request):
        if self.autorefresh:
            static_file = await sync_to_async(self.find_file)(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is not None:
            return await sync_to_async(self.serve)(static_file, request)
        return await self.get_response(request)


class AsyncMiddleware:
    """A middleware for async requests only: under ASGI, Django calls it on the event loop,
    so the streams that pass it take no thread hop. Subclasses implement `__call__`."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        markcoroutinefunction(self)


class RequestContextMiddleware(AsyncMiddleware):
    """Give each request an id, log it once answered, and count it in the metrics.

    The id is the client's `X-Request-ID` when it looks like one (a proxy's), else a new
    one; it goes back in the response's `X-Request-ID` and onto every log record made
    while the request is served (chat.logs). Async only, so streams stay on the loop.
    """

    async def __call__(self, request):
        context = logs.open_context(request.headers.get("X-Request-ID"))
        started = time.perf_counter()
        response = await self.get_response(request)
        elapsed = time.perf_counter() - started
        response.headers.setdefault("X-Request-ID", context["request_id"])
        logs.bind(user_id=_user_id(request))
        route = _route(request)
        method = request.method if request.method in METHODS else "OTHER"
        if metrics.enabled():
            metrics.HTTP_REQUESTS.labels(method, route, response.status_code).inc()
            metrics.HTTP_LATENCY.labels(method, route).observe(elapsed)
        access_log.info(
            "%s %s %s %.0fms",
            *(request.method, request.path, response.status_code, elapsed * 1000),
            extra={
                "method": request.method,
                "path": request.path,
                "route": route,
                "status": response.status_code,
                "duration_ms": round(elapsed * 1000, 1),
            },
        )
        return response


def _route(request) -> str:
    """The URL pattern that served `request` (few distinct values, unlike paths)."""
    match = getattr(request, "resolver_match", None)
    return match.route if match else "unmatched"


def _user_id(request):
    """Who made the request, where it is already known: no database query for the log."""
    user = getattr(request, "api_user", None) or request.__dict__.get("user")
    if isinstance(user, SimpleLazyObject):  # not looked up yet: leave it so
        user = None if user._wrapped is empty else user._wrapped
    return user.pk if user is not None and user.is_authenticated else None


class MetricsEndpointMiddleware(AsyncMiddleware):
    """Answer GET /metrics first of all, before host-name and HTTPS checks (chat.views.metrics)."""

    async def __call__(self, request):
        if request.path_info == "/metrics":
            return await asyncio.to_thread(metrics_view, request)
        return await self.get_response(request)
