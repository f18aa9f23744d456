"""GET /api/openapi.json: the API as an OpenAPI 3.1 document, open to anyone."""

from django.http import JsonResponse

from chat import schema
from chat.errors import MethodNotAllowed


def openapi_document(request):
    if request.method not in ("GET", "HEAD"):
        return MethodNotAllowed("Use GET here.").response()
    return JsonResponse(schema.document())
