"""The pages a person sees: sign-up and the chat."""

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods


@require_http_methods(["GET", "POST"])
def signup(request):
    if request.user.is_authenticated:
        return redirect("chat")
    form = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        login(request, form.save())
        return redirect("chat")
    return render(request, "registration/signup.html", {"form": form})


@login_required
def chat(request, conversation_id: int | None = None):
    context = {
        "conversation_id": conversation_id,
        "max_new_tokens": settings.CHAT_MAX_NEW_TOKENS,
    }
    return render(request, "chat/chat.html", context)
