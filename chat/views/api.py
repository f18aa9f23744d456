"""The native JSON API: models and conversations."""

from django.conf import settings
from django.http import HttpResponse, JsonResponse

from chat import branches, tuning
from chat.errors import NotFound
from chat.models import Conversation
from chat.providers import available_models
from chat.replies import check_model, delete_conversation
from chat.schema import bodies
from chat.serializers import conversation_json, conversation_with_messages

from .endpoint import api_endpoint, read_json

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
    """The fields a body (checked against bodies.conversation_fields) sets."""
    fields = {name: body.get(name) for name in ("title", "system_prompt")}
    if body.get("model") is not None:
        fields["model"] = check_model(body["model"])
    if fields["title"]:
        # A title the user chose is theirs: the model will not write another over it.
        fields["title_source"] = Conversation.TitleSource.USER
    fields = {name: value for name, value in fields.items() if value is not None}
    return {**fields, **tuning.settings_fields(body)}


def _create_conversation(request):
    body = read_json(request, bodies.conversation_fields())
    fields = {"model": settings.CHAT_DEFAULT_MODEL, **_conversation_fields(body)}
    conversation = Conversation.objects.create(owner=request.api_user, **fields)
    return JsonResponse(conversation_json(conversation), status=201)


def _patch(conversation: Conversation, body: dict) -> None:
    # Only the fields sent are saved: a title the model writes meanwhile must survive a
    # branch switch. Switching branches is no activity that reorders the sidebar.
    fields = _conversation_fields(body)
    for name, value in fields.items():
        setattr(conversation, name, value)
    changed = [*fields, "updated_at"] if fields else []
    if "current_message_id" in body:
        branches.switch_to(conversation, body["current_message_id"])
        changed.append("current_message")
    if changed:
        conversation.save(update_fields=changed)


@api_endpoint("GET", "PATCH", "DELETE")
def conversation(request, conversation_id: int):
    found = Conversation.objects.for_user(request.api_user).filter(pk=conversation_id).first()
    if found is None:
        raise NotFound("No such conversation.")
    if request.method == "DELETE":
        delete_conversation(found)
        return HttpResponse(status=204)
    if request.method == "PATCH":
        _patch(found, read_json(request, bodies.conversation_fields()))
    return JsonResponse(conversation_with_messages(found))
