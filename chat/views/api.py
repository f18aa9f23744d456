"""The native JSON API: models and conversations."""

from django.conf import settings
from django.http import HttpResponse, JsonResponse

from chat import branches, tuning
from chat.errors import NotFound
from chat.models import Conversation
from chat.providers import available_models
from chat.replies import check_model
from chat.serializers import conversation_json, conversation_with_messages

from .endpoint import api_endpoint, optional_text, read_json

TITLE_LIMIT = 200
LIST_LIMIT = 200


@api_endpoint("GET")
def models(request):
    return JsonResponse({"models": available_models()})


@api_endpoint("GET", "POST")
def conversations(request):
    if request.method == "POST":
        return _create_conversation(request)
    found = (
        Conversation.objects.for_user(request.api_user)
        .search(request.GET.get("q", "").strip())
        .newest_first()[:LIST_LIMIT]
    )
    return JsonResponse({"conversations": [conversation_json(c) for c in found]})


def _conversation_fields(body: dict) -> dict:
    fields = {
        "title": optional_text(body, "title", TITLE_LIMIT),
        "system_prompt": optional_text(body, "system_prompt", settings.CHAT_MAX_CONTENT_CHARS),
    }
    if "model" in body:
        fields["model"] = check_model(body["model"])
    fields = {name: value for name, value in fields.items() if value is not None}
    return {**fields, **tuning.settings_fields(body)}


def _create_conversation(request):
    fields = {"model": settings.CHAT_DEFAULT_MODEL, **_conversation_fields(read_json(request))}
    conversation = Conversation.objects.create(owner=request.api_user, **fields)
    return JsonResponse(conversation_json(conversation), status=201)


@api_endpoint("GET", "PATCH", "DELETE")
def conversation(request, conversation_id: int):
    found = Conversation.objects.for_user(request.api_user).filter(pk=conversation_id).first()
    if found is None:
        raise NotFound("No such conversation.")
    if request.method == "DELETE":
        found.delete()
        return HttpResponse(status=204)
    if request.method == "PATCH":
        body = read_json(request)
        for name, value in _conversation_fields(body).items():
            setattr(found, name, value)
        if "current_message_id" in body:
            branches.switch_to(found, body["current_message_id"])
        found.save()
    return JsonResponse(conversation_with_messages(found))
