"""The OpenAI-compatible API: `/v1/models` and `/v1/chat/completions`, Bearer keys only.

Each completion goes through `replies.start_completion`, the same run machinery as the
native API, so it is stored in the key owner's history, keeps generating through the
disconnect grace period, and can be watched or stopped from `/api/messages/{id}/`.
"""

import functools

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from chat import completions, replies
from chat.auth import bearer_user
from chat.db import reads
from chat.errors import ChatError, LimitExceeded, MethodNotAllowed
from chat.providers import available_models
from chat.schema import bodies

from .endpoint import read_json_async
from .stream import event_stream_response


def openai_error(error: ChatError) -> JsonResponse:
    response = JsonResponse(completions.error_body(error), status=error.status)
    # Retrying would store the chat a second time; the client should decide, not its SDK.
    response["X-Should-Retry"] = "false"
    if isinstance(error, LimitExceeded):
        response["Retry-After"] = str(error.retry_after)
        # Refused by a limit, nothing was stored: the SDK may retry after Retry-After, unless
        # that is hours away (the day's quota).
        retry = error.code != "quota_exceeded"
        response["X-Should-Retry"] = "true" if retry else "false"
    return response


def openai_endpoint(*methods: str):
    """Bearer key only (no session, so no CSRF), errors in OpenAI's shape."""

    def decorate(view):
        async def wrapper(request, *args, **kwargs):
            try:
                if request.method not in methods:
                    raise MethodNotAllowed(f"Use {' or '.join(methods)} here.")
                request.api_user = await reads(bearer_user)(request)
                return await view(request, *args, **kwargs)
            except ChatError as error:
                return openai_error(error)

        return csrf_exempt(functools.wraps(view)(wrapper))

    return decorate


@openai_endpoint("GET")
async def models(request):
    return JsonResponse(completions.model_list(available_models()))


@openai_endpoint("GET")
async def model(request, model_id: str):
    for offered in available_models():
        if offered["id"] == model_id:
            return JsonResponse(completions.model_object(offered))
    raise completions.ModelNotFound(f"The model `{model_id}` does not exist.")


@openai_endpoint("POST")
async def chat_completions(request):
    body = await read_json_async(request, bodies.chat_completion(), default_code="invalid_value")
    wanted = completions.read_request(body)
    run = await replies.start_completion(
        request.api_user, wanted.messages, wanted.model, **wanted.options
    )
    completion = completions.Completion(run.ids.message_id, wanted, run.generation)
    followed = await replies.follow_run(run)
    if wanted.stream:
        return event_stream_response(completion.frames(followed))
    return JsonResponse(await completion.result(followed))
