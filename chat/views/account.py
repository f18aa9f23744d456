"""The account page: API keys, usage, and the history as a file."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from chat import api_keys, dashboard, imports, limits
from chat.errors import ChatError, NotFound
from chat.models import ApiKey
from chat.usage import usage_for

from .history import uploaded_bytes
from .shares import account_context as shares_context

NAME_LIMIT = ApiKey._meta.get_field("name").max_length


class KeyForm(forms.Form):
    name = forms.CharField(
        max_length=NAME_LIMIT,
        required=False,
        help_text="To tell your keys apart, e.g. the script or machine that uses it.",
    )


def _page(request, form=None, new_key=None, status=200):
    context = {
        "keys": api_keys.keys_of(request.user),
        "form": form or KeyForm(),
        "new_key": new_key,
        "usage": usage_for(request.user),
        "usage_chart": dashboard.account_chart(request.user),
        "today": limits.today_for(request.user),
        **shares_context(request.user),
    }
    return render(request, "account/account.html", context, status=status)


@login_required
@require_GET
def account(request):
    return _page(request)


@login_required
@require_POST
def create_key(request):
    form = KeyForm(request.POST)
    if not form.is_valid():
        return _page(request, form=form, status=400)
    key, raw = api_keys.issue_key(request.user, form.cleaned_data["name"])
    # Rendered straight away rather than redirected: the raw key must not be kept anywhere.
    return _page(request, new_key={"key": key, "raw": raw})


@login_required
@require_POST
def revoke_key(request, key_id: int):
    try:
        key = api_keys.revoke_key(request.user, key_id)
    except NotFound:
        raise Http404("No such key.") from None
    messages.success(request, f"The key {key.prefix}… no longer works.")
    return redirect("account")


@login_required
@require_POST
async def import_history(request):
    user = await request.auser()
    try:
        result = await imports.import_upload(user, lambda: uploaded_bytes(request))
    except ChatError as error:
        messages.error(request, f"Nothing was imported. {error.message}")
    else:
        count = len(result.conversation_ids)
        messages.success(request, f"Imported {count} conversations, {result.messages} messages.")
    return redirect("account")
