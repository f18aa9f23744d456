"""Our middleware: a Content-Security-Policy, no-store, and static files without a thread hop."""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from whitenoise.middleware import WhiteNoiseMiddleware

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
