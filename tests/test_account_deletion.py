"""Deleting one's account: everything in it goes, its reply stops, its keys and sessions end."""

import pytest

from chat.models import ApiKey, Conversation, Message
from tests.conftest import send

pytestmark = pytest.mark.usefixtures("fast_password_hashing")

PASSWORD = "correct horse battery"


def signed_in_as_alice(visitor):
    person = visitor()
    assert person.log_in("alice", PASSWORD).status_code == 302
    return person


def test_it_asks_for_the_password_first(visitor, alice):
    page = signed_in_as_alice(visitor).http.get("/account/delete")
    assert page.status_code == 200
    assert "for good" in page.text and 'name="password"' in page.text


def test_it_deletes_everything_and_stops_the_running_reply(
    visitor, api, conversation, settings, django_user_model, bobs_conversation
):
    settings.CHAT_FAKE_TOKENS_PER_SECOND = 5
    person = signed_in_as_alice(visitor)
    with send(api, conversation["id"], "Hello") as stream:
        mid = stream.until("delta")[0].data["message_id"]
        response = person.post_form("/account/delete", {"password": PASSWORD})
        assert response.status_code == 200 and "Account deleted" in response.text
        rest = stream.all()
    assert rest[-1].event == "done" and rest[-1].data["status"] == "stopped"

    assert not django_user_model.objects.filter(username="alice").exists()
    assert not Conversation.objects.filter(owner__username="alice").exists()
    assert not Message.objects.filter(conversation_id=conversation["id"]).exists()
    assert not Message.objects.filter(pk=mid).exists(), "the stopped reply came back"
    assert not ApiKey.objects.filter(user__username="alice").exists()
    assert api.get("/api/conversations").status_code == 401, "her key still works"
    assert not person.signed_in(), "her browser is still signed in"
    assert Conversation.objects.filter(pk=bobs_conversation.pk).exists(), "bob lost his"


def test_a_wrong_password_deletes_nothing(visitor, alice, alices_history):
    person = signed_in_as_alice(visitor)
    response = person.post_form("/account/delete", {"password": "a guess"})
    assert response.status_code == 400 and "nothing was deleted" in response.text
    alice.refresh_from_db()
    assert alice.is_active
    assert Conversation.objects.filter(owner=alice).count() == len(alices_history)
    assert person.signed_in()


def test_deleting_needs_a_signed_in_user_and_a_csrf_token(visitor, alice):
    anonymous = visitor().post_form("/account/delete", {"password": PASSWORD})
    assert anonymous.status_code == 302 and "/login/" in anonymous.headers["location"]
    person = signed_in_as_alice(visitor)
    forged = person.http.post("/account/delete", data={"password": PASSWORD})
    assert forged.status_code == 403
    assert person.signed_in()


def test_the_account_page_links_password_change_and_deletion(visitor, alice):
    page = signed_in_as_alice(visitor).http.get("/account/").text
    assert 'href="/account/password/"' in page and 'href="/account/delete"' in page
    assert "cannot be reset by e-mail" in page


def test_it_sets_and_clears_the_email_on_the_account_page(visitor, alice):
    person = signed_in_as_alice(visitor)
    response = person.post_form("/account/email", {"email": "alice@example.com"})
    assert response.headers["location"] == "/account/"
    alice.refresh_from_db()
    assert alice.email == "alice@example.com"
    assert "alice@example.com" in person.http.get("/account/").text

    bad = person.post_form("/account/email", {"email": "not an address"}, follow_redirects=True)
    assert "Nothing was changed" in bad.text
    alice.refresh_from_db()
    assert alice.email == "alice@example.com"

    person.post_form("/account/email", {"email": ""})
    alice.refresh_from_db()
    assert alice.email == ""
