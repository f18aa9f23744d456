"""Getting in and out, in the browser: an invitation link, a locked sign-in, deleting an account."""

import re

import pytest
from playwright.sync_api import expect

from chat.models import Conversation, Invitation
from tests.browser.conftest import PASSWORD

pytestmark = pytest.mark.browser
PASSWORD_LABEL = re.compile(r"^Password:?$")


def sign_in(page, username: str, password: str):
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label(PASSWORD_LABEL).fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_an_invitation_link_signs_someone_up(page, settings, django_user_model):
    settings.CHAT_SIGNUP = "invite"
    page.goto("/login/")
    expect(page.get_by_text("Accounts are by invitation")).to_be_visible()
    invitation = Invitation.objects.create(note="for carol")

    page.goto(invitation.path())
    expect(page.get_by_text("You were invited")).to_be_visible()
    page.get_by_label("Username").fill("carol")
    page.get_by_label("Email").fill("carol@example.com")
    page.get_by_label(PASSWORD_LABEL).fill("a sturdy passphrase")
    page.get_by_label("Password confirmation").fill("a sturdy passphrase")
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url("**/")
    assert django_user_model.objects.get(username="carol").email == "carol@example.com"

    # Off the chat page first: its requests, answered 401 once the cookies are gone, would
    # send the tab to the log-in page, racing the next goto.
    page.goto("about:blank")
    page.context.clear_cookies()
    page.goto(invitation.path())
    expect(page.get_by_role("alert")).to_have_text(re.compile("already been used"))


def test_a_locked_sign_in_says_so_in_plain_words(page, alice):
    for n in range(5):
        sign_in(page, "alice", f"guess {n}")
    expect(page.get_by_role("heading")).to_have_text("Too many failed sign-ins")
    expect(page.get_by_role("alert")).to_contain_text("Try again in 15 minutes")

    sign_in(page, "alice", PASSWORD)
    expect(page.get_by_role("heading")).to_have_text("Too many failed sign-ins")
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/"))


def test_an_account_is_deleted_from_the_account_page(page, alice, alices_history):
    sign_in(page, "alice", PASSWORD)
    page.wait_for_url("**/")
    page.goto("/account/")
    page.get_by_role("link", name="Delete your account and everything in it").click()
    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_role("button", name="Delete my account and everything in it").click()
    expect(page.get_by_role("heading")).to_have_text("Account deleted")
    assert not Conversation.objects.filter(pk__in=[c.pk for c in alices_history]).exists()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/"))
