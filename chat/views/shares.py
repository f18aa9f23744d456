"""Shared links: made and revoked through the API, read by anyone on /s/<token>/."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from chat import shares
from chat.errors import NotFound

from .endpoint import api_endpoint


@api_endpoint("POST", "DELETE")
def share(request, conversation_id: int):
    if request.method == "DELETE":
        shares.unshare(request.api_user, conversation_id)
        return HttpResponse(status=204)
    link = shares.share(request.api_user, conversation_id)
    return JsonResponse(shares.link_json(link), status=201)


@require_GET
def shared_page(request, token: str):
    """The snapshot, for anyone with the link: no account, nothing of the owner's."""
    try:
        link = shares.shared(token)
    except NotFound:
        raise Http404("No such shared link.") from None
    response = render(request, "chat/shared.html", {"link": link})
    # Unlisted: search engines keep out, the URL is not sent on to sites it links to, and
    # a revoked link must answer 404 at once, so nothing keeps a copy.
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def revoke_link(request, link_id: int):
    try:
        shares.revoke_link(request.user, link_id)
    except NotFound:
        raise Http404("No such shared link.") from None
    messages.success(request, "The link no longer works.")
    return redirect("account")


def account_context(user) -> dict:
    """What the account page's shared-links section needs."""
    return {"shared_links": shares.links_of(user)}
