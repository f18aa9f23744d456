"""Django's 404 and 500 pages, answered in API.md's JSON shape under /api/ and /v1/."""

from django.views import defaults

from chat.errors import error_response

API_PREFIXES = ("/api/", "/v1/")


def not_found(request, exception=None):
    if request.path.startswith(API_PREFIXES):
        return error_response(404, "not_found", "There is nothing at this address.")
    return defaults.page_not_found(request, exception)


def server_error(request):
    if request.path.startswith(API_PREFIXES):
        return error_response(500, "server_error", "Something went wrong on our side.")
    return defaults.server_error(request)
