"""The chat page."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render


@login_required
def chat(request, conversation_id: int | None = None):
    return render(request, "chat/chat.html", {"conversation_id": conversation_id})
