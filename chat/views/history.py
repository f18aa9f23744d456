"""History as files: export a conversation or the whole account, import a file."""

from django.conf import settings
from django.http import JsonResponse

from chat import exports, imports
from chat.errors import BadRequest, TooLarge

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


@api_endpoint("POST")
async def import_history(request):
    result = await imports.import_upload(request.api_user, lambda: uploaded_bytes(request))
    body = {"conversations": result.conversation_ids, "messages": result.messages}
    return JsonResponse(body, status=201)


def uploaded_bytes(request) -> bytes:
    """The file sent as the body, or as the form field `file`; 413 beyond the limit."""
    limit = settings.CHAT_IMPORT_MAX_BYTES
    too_large = TooLarge(f"The file is larger than the limit of {limit} bytes.")
    if request.content_type == "multipart/form-data":
        upload = request.FILES.get("file")
        if upload is None:
            raise BadRequest("Send the file in the form field 'file'.", code="missing_file")
        if upload.size > limit:
            raise too_large
        return upload.read()
    # Read the stream rather than request.body, whose cap (DATA_UPLOAD_MAX_MEMORY_SIZE)
    # is meant for forms, not for a history file.
    raw = request.read(limit + 1)
    if len(raw) > limit:
        raise too_large
    return raw
