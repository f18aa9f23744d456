"""Shared links: a snapshot for anyone with the URL, revoked at once, owners' only."""

import re

import httpx
import pytest
from django.test import Client

from chat.middleware import POLICY
from chat.models import Conversation, SharedLink
from tests.conftest import make_conversation, send

pytestmark = pytest.mark.django_db(transaction=True)


def share(client, conversation_id: int) -> httpx.Response:
    return client.post(f"/api/conversations/{conversation_id}/share")


def visit(live_server_url: str, url: str) -> httpx.Response:
    """GET a page as a stranger: a client with no cookie and no key."""
    with httpx.Client(base_url=live_server_url) as stranger:
        return stranger.get(url)


def reply_to(api, conversation_id: int, content: str) -> None:
    with send(api, conversation_id, content) as stream:
        assert stream.all()[-1].event == "done"


def test_it_shares_a_snapshot_anyone_with_the_link_can_read(api, conversation, live_server_url):
    reply_to(api, conversation["id"], "echo Otters **hold hands** while they sleep.")
    response = share(api, conversation["id"])
    assert response.status_code == 201
    link = response.json()
    assert re.fullmatch(r"/s/[A-Za-z0-9_-]{24}/", link["url"])
    assert link["messages"] == 2

    page = visit(live_server_url, link["url"])
    assert page.status_code == 200
    html = page.text
    assert '"body plain">echo Otters **hold hands** while they sleep.</div>' in html
    assert '"body markdown">Otters **hold hands** while they sleep.</div>' in html
    assert '<meta name="robots" content="noindex, nofollow">' in html
    assert page.headers["X-Robots-Tag"] == "noindex, nofollow"
    assert page.headers["Content-Security-Policy"] == POLICY
    assert page.headers["Referrer-Policy"] == "no-referrer"
    # The same modules render it as on the chat page.
    assert "/static/chat/shared.js" in html


def test_it_keeps_later_messages_out_of_the_snapshot(api, conversation, live_server_url):
    reply_to(api, conversation["id"], "echo before sharing")
    url = share(api, conversation["id"]).json()["url"]
    reply_to(api, conversation["id"], "echo after sharing")
    html = visit(live_server_url, url).text
    assert "before sharing" in html
    assert "after sharing" not in html


def test_it_shows_nothing_of_the_owner_beyond_the_snapshot(api, live_server_url):
    secret = "You are the secret persona of alice."
    body = {"model": "fake", "system_prompt": secret}
    conversation = api.post("/api/conversations", json=body).json()
    reply_to(api, conversation["id"], "echo hello")
    html = visit(live_server_url, share(api, conversation["id"]).json()["url"]).text
    assert "alice" not in html
    assert secret not in html
    assert f"/c/{conversation['id']}/" not in html
    assert "csrfmiddlewaretoken" not in html


def test_it_shows_a_reply_as_text_for_the_sanitiser_never_as_markup(
    api, conversation, live_server_url
):
    reply_to(api, conversation["id"], "echo <script>alert(1)</script><img src=x onerror=alert(2)>")
    html = visit(live_server_url, share(api, conversation["id"]).json()["url"]).text
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_it_revokes_every_link_and_a_new_share_gets_a_new_token(api, conversation, live_server_url):
    reply_to(api, conversation["id"], "echo hello")
    first = share(api, conversation["id"]).json()["url"]
    second = share(api, conversation["id"]).json()["url"]
    assert first != second
    assert api.delete(f"/api/conversations/{conversation['id']}/share").status_code == 204
    assert visit(live_server_url, first).status_code == 404
    assert visit(live_server_url, second).status_code == 404
    again = share(api, conversation["id"]).json()["url"]
    assert again not in (first, second)
    assert visit(live_server_url, again).status_code == 200


def test_it_answers_404_for_another_users_conversation(bob_api, api, conversation):
    assert share(bob_api, conversation["id"]).status_code == 404
    shared = share(api, conversation["id"])
    refused = bob_api.delete(f"/api/conversations/{conversation['id']}/share")
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "not_found"
    assert SharedLink.objects.filter(token=shared.json()["token"]).exists()


def test_it_answers_404_for_a_token_that_never_existed(api, live_server_url):
    assert visit(live_server_url, "/s/not-a-real-token-at-all/").status_code == 404


def test_it_revokes_the_links_of_a_deleted_conversation(api, conversation, live_server_url):
    url = share(api, conversation["id"]).json()["url"]
    api.delete(f"/api/conversations/{conversation['id']}")
    assert visit(live_server_url, url).status_code == 404


def test_it_refuses_other_methods(api, conversation):
    response = api.get(f"/api/conversations/{conversation['id']}/share")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_it_needs_credentials_to_share(live_server_url, conversation):
    with httpx.Client(base_url=live_server_url) as stranger:
        response = stranger.post(f"/api/conversations/{conversation['id']}/share")
    assert response.status_code == 401


def test_the_account_page_lists_the_users_links_and_revokes_them(alice, bob, live_server_url):
    otters = make_conversation(alice, "Otters", [("user", "Tell me about otters.", "complete")])
    plan = make_conversation(bob, "Bob's plan", [("user", "my plan", "complete")])
    client = Client()
    client.force_login(alice)
    from chat import shares

    mine = shares.share(alice, otters.pk)
    bobs = shares.share(bob, plan.pk)
    page = client.get("/account/").content.decode()
    assert mine.url in page and "Otters" in page
    assert bobs.url not in page

    assert client.post(f"/account/shares/{bobs.pk}/revoke").status_code == 404
    assert SharedLink.objects.filter(pk=bobs.pk).exists()
    response = client.post(f"/account/shares/{mine.pk}/revoke")
    assert response.status_code == 302
    assert visit(live_server_url, mine.url).status_code == 404
    assert Conversation.objects.filter(pk=otters.pk).exists()
