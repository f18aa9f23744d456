"""The ASGI entry point: HTTP through Django, websockets through Channels."""

import os

import django
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")


class SharedThreadASGIHandler(ASGIHandler):
    """Django's ASGI handler, minus a new thread for every request.

    Django gives each request a ThreadSensitiveContext, so the sync halves of its
    middleware (sessions, CSRF, auth...) run in a thread created for that request.
    At hundreds of replies starting at once, creating those threads was most of the
    cost of a start. Without the context they run on asgiref's one shared sync thread,
    where each takes microseconds; the streaming path's database work has a thread of
    its own (chat.db).
    """

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        await self.handle(scope, receive, send)


django.setup(set_prefix=False)
django_asgi_app = SharedThreadASGIHandler()

# Channels' routing imports models, so it must come after Django is set up.
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

from chat.bodylimit import BodyLimitMiddleware  # noqa: E402
from chat.consumers import ConversationConsumer  # noqa: E402

websocket_routes = [
    path("ws/conversations/<int:conversation_id>/", ConversationConsumer.as_asgi()),
]

application = ProtocolTypeRouter(
    {
        "http": BodyLimitMiddleware(django_asgi_app),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_routes))),
    }
)
