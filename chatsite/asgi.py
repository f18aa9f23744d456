"""The ASGI entry point: HTTP through Django, websockets through Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")

# Django's own handler: each request's sync work runs on a thread of that request's, with
# a database connection no other request can close. The streaming path's ORM calls have
# threads of their own (chat.db).
django_asgi_app = get_asgi_application()

# Channels' routing imports models, so it must come after Django is set up.
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

from chat import parsing  # noqa: E402
from chat.bodylimit import BodyLimitMiddleware  # noqa: E402
from chat.consumers import ConversationConsumer  # noqa: E402
from chat.handlers import ApiHandler, by_path  # noqa: E402
from chat.providers import preload_default  # noqa: E402

websocket_routes = [
    path("ws/conversations/<int:conversation_id>/", ConversationConsumer.as_asgi()),
]

application = ProtocolTypeRouter(
    {
        "http": BodyLimitMiddleware(by_path(ApiHandler(), django_asgi_app)),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_routes))),
    }
)

# Every server imports this module as it starts (uvicorn, runserver's Daphne): load the
# default model now, in the background, rather than on the first message; and start the
# worker process that parses large request bodies (it takes a second).
preload_default()
parsing.start_worker()
