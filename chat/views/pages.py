"""The chat page."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import render


@login_required
def chat(request, conversation_id: int | None = None):
    context = {
        "conversation_id": conversation_id,
        "max_new_tokens": settings.CHAT_MAX_NEW_TOKENS,
    }
    return render(request, "chat/chat.html", context)
