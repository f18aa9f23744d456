"""History as files: export a conversation or the whole account."""

from chat import exports

from .download import download_response
from .endpoint import api_endpoint


@api_endpoint("GET")
def export_conversation(request, conversation_id: int):
    fmt = request.GET.get("format", "json")
    download = exports.conversation_download(request.api_user, conversation_id, fmt)
    return download_response(download)


@api_endpoint("GET")
def export_account(request):
    download = exports.account_download(request.api_user, request.GET.get("format", "json"))
    return download_response(download)
