"""A health check for load balancers and docker-compose: the database and Redis answer."""

from django.http import JsonResponse

from chat import db
from chat.errors import ChatError
from chat.runs import registry


async def health(request):
    """200 when this web process can serve; 503 naming what is down otherwise."""
    try:
        await registry().check()
        await db.ping()
    except ChatError as error:
        return error.response()
    return JsonResponse({"status": "ok"})
