"""Who may sign up: CHAT_SIGNUP open, invite (single-use, expiring links staff make) or closed."""

import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from chat import signup
from chat.errors import ChatError
from chat.models import Invitation
from chat.views.access import SignupForm

pytestmark = pytest.mark.usefixtures("fast_password_hashing")

ROOT = signup.__file__.rsplit("/chat/", 1)[0]
PASSWORD = "a sturdy passphrase"


def new_account(username: str, **extra) -> dict:
    return {"username": username, "password1": PASSWORD, "password2": PASSWORD, **extra}


def test_it_takes_an_optional_email_at_sign_up(visitor, django_user_model):
    with_email = visitor().post_form("/signup/", new_account("carol", email="carol@example.com"))
    without = visitor().post_form("/signup/", new_account("dave"))
    assert with_email.status_code == without.status_code == 302
    assert django_user_model.objects.get(username="carol").email == "carol@example.com"
    assert django_user_model.objects.get(username="dave").email == ""


def test_it_refuses_a_malformed_email_at_sign_up(visitor, django_user_model):
    response = visitor().post_form("/signup/", new_account("carol", email="not an address"))
    assert response.status_code == 200 and "valid email address" in response.text
    assert not django_user_model.objects.filter(username="carol").exists()


def test_when_closed_nobody_signs_up(visitor, settings, django_user_model):
    settings.CHAT_SIGNUP = "closed"
    person = visitor()
    page = person.http.get("/signup/")
    assert page.status_code == 403 and "not taking new sign-ups" in page.text
    assert person.post_form("/signup/", new_account("carol")).status_code == 403
    assert not django_user_model.objects.filter(username="carol").exists()
    login = person.http.get("/login/").text
    assert "staff create the accounts" in login and 'href="/signup/"' not in login


def test_when_open_the_login_page_offers_sign_up(visitor):
    assert 'href="/signup/"' in visitor().http.get("/login/").text


def test_when_invite_only_sign_up_needs_an_invitation(visitor, settings, django_user_model):
    settings.CHAT_SIGNUP = "invite"
    person = visitor()
    page = person.http.get("/signup/")
    assert page.status_code == 403 and "by invitation only" in page.text
    assert person.post_form("/signup/", new_account("carol")).status_code == 403
    assert not django_user_model.objects.filter(username="carol").exists()
    assert "Accounts are by invitation" in person.http.get("/login/").text


def test_an_invitation_signs_up_one_person_once(visitor, settings, django_user_model):
    settings.CHAT_SIGNUP = "invite"
    invitation = Invitation.objects.create(note="for carol")
    carol = visitor()
    page = carol.http.get(invitation.path())
    assert page.status_code == 200 and "You were invited" in page.text
    body = new_account("carol", invitation=invitation.token)
    assert carol.post_form("/signup/", body).status_code == 302
    assert carol.signed_in()

    invitation.refresh_from_db()
    assert invitation.used_by.username == "carol" and invitation.used_at is not None
    again = visitor().post_form("/signup/", new_account("mallory", invitation=invitation.token))
    assert again.status_code == 410 and "already been used" in again.text
    assert not django_user_model.objects.filter(username="mallory").exists()


def test_an_expired_invitation_is_refused(visitor, settings, django_user_model):
    settings.CHAT_SIGNUP = "invite"
    invitation = Invitation.objects.create(expires_at=timezone.now() - timedelta(seconds=1))
    person = visitor()
    assert person.http.get(invitation.path()).status_code == 410
    response = person.post_form("/signup/", new_account("carol", invitation=invitation.token))
    assert response.status_code == 410 and "expired" in response.text
    assert not django_user_model.objects.filter(username="carol").exists()


def test_an_unknown_or_guessed_invitation_is_refused(visitor, settings, django_user_model):
    settings.CHAT_SIGNUP = "invite"
    real = Invitation.objects.create()
    person = visitor()
    for guess in ["x", real.token[:-1], real.token.upper(), real.token + "\x00"]:
        response = person.post_form("/signup/", new_account("carol", invitation=guess))
        assert response.status_code == 404 and "not valid" in response.text
    assert not django_user_model.objects.filter(username="carol").exists()


def test_invitation_tokens_are_long_and_random():
    tokens = {Invitation().token for _ in range(100)}
    assert len(tokens) == 100 and min(len(t) for t in tokens) >= 43


@pytest.mark.django_db(transaction=True)
def test_of_simultaneous_sign_ups_with_one_invitation_exactly_one_succeeds(
    settings, django_user_model
):
    settings.CHAT_SIGNUP = "invite"
    invitation = Invitation.objects.create()
    start = threading.Barrier(4)
    outcomes = []

    def sign_up(username):
        try:
            form = SignupForm(new_account(username))
            assert form.is_valid(), form.errors
            start.wait(10)
            signup.create_account(form, invitation.token)
            outcomes.append("created")
        except ChatError as error:
            outcomes.append(error.status)
        finally:
            connection.close()

    threads = [threading.Thread(target=sign_up, args=(f"user{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes, key=str) == [410, 410, 410, "created"]
    assert django_user_model.objects.count() == 1
    invitation.refresh_from_db()
    assert invitation.used_by == django_user_model.objects.get()


def test_staff_make_an_invitation_in_the_admin_and_copy_its_link(admin_client, admin_user):
    tomorrow = timezone.now() + timedelta(days=1)
    response = admin_client.post(
        "/admin/chat/invitation/add/",
        {
            "note": "for carol",
            "expires_at_0": tomorrow.strftime("%Y-%m-%d"),
            "expires_at_1": tomorrow.strftime("%H:%M:%S"),
        },
    )
    invitation = Invitation.objects.get()
    assert response.status_code == 302
    assert response.url.endswith(f"/admin/chat/invitation/{invitation.pk}/change/")
    assert invitation.created_by == admin_user and invitation.state == "open"
    page = admin_client.get(response.url).content.decode()
    assert f'value="http://testserver/signup/?invitation={invitation.token}"' in page
    listing = admin_client.get("/admin/chat/invitation/").content.decode()
    assert f'href="/signup/?invitation={invitation.token}"' in listing


def test_a_bad_chat_signup_value_stops_the_start_up():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "SECRET_KEY": "test", "CHAT_SIGNUP": "sometimes"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "CHAT_SIGNUP must be open, invite or closed, not 'sometimes'" in result.stderr
