from django.urls import path, register_converter

from chat.converters import IdConverter
from chat.views import (
    access,
    account,
    api,
    health,
    history,
    openai_api,
    openapi,
    pages,
    shares,
    stream,
)

register_converter(IdConverter, "id")

urlpatterns = [
    path("", pages.chat, name="chat"),
    path("c/<id:conversation_id>/", pages.chat, name="conversation"),
    path("signup/", access.signup_view, name="signup"),
    path("healthz", health.health, name="health"),
    path("account/", account.account, name="account"),
    path("account/keys", account.create_key, name="account-create-key"),
    path("account/keys/<id:key_id>/revoke", account.revoke_key, name="account-revoke-key"),
    path("account/import", account.import_history, name="account-import"),
    path("account/email", access.change_email, name="account-email"),
    path("account/delete", access.delete_account, name="account-delete"),
    path("account/shares/<id:link_id>/revoke", shares.revoke_link, name="account-revoke-share"),
    path("s/<slug:token>/", shares.shared_page, name="shared"),
    path("api/conversations/<id:conversation_id>/share", shares.share, name="api-share"),
    path("api/openapi.json", openapi.openapi_document, name="api-openapi"),
    path("api/models", api.models, name="api-models"),
    path("api/conversations", api.conversations, name="api-conversations"),
    path("api/conversations/<id:conversation_id>", api.conversation, name="api-conversation"),
    path(
        "api/conversations/<id:conversation_id>/messages",
        stream.send_message,
        name="api-send-message",
    ),
    path("api/messages/<id:message_id>/stream", stream.message_stream, name="api-stream"),
    path("api/messages/<id:message_id>/stop", stream.stop_message, name="api-stop"),
    path(
        "api/messages/<id:message_id>/regenerate",
        stream.regenerate_message,
        name="api-regenerate",
    ),
    path(
        "api/conversations/<id:conversation_id>/export",
        history.export_conversation,
        name="api-export-conversation",
    ),
    path("api/export", history.export_account, name="api-export"),
    path("api/import", history.import_history, name="api-import"),
    path("v1/models", openai_api.models, name="v1-models"),
    path("v1/models/<path:model_id>", openai_api.model, name="v1-model"),
    path("v1/chat/completions", openai_api.chat_completions, name="v1-chat-completions"),
]
