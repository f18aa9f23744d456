"""The account page: API keys created once-shown, named and revoked; usage; history files."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from chat.models import ApiKey, Conversation

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client


def works(raw_key: str) -> bool:
    response = Client().get("/api/models", headers={"Authorization": f"Bearer {raw_key}"})
    return response.status_code == 200


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/account/"),
        ("post", "/account/keys"),
        ("post", "/account/keys/1/revoke"),
        ("post", "/account/import"),
    ],
)
def test_it_needs_a_signed_in_user(client, method, path):
    response = getattr(client, method)(path)
    assert response.status_code == 302
    assert response.url.startswith("/login/")


def test_it_creates_a_named_key_and_shows_it_only_once(browser, alice):
    response = browser.post("/account/keys", {"name": "backup script"})
    assert response.status_code == 200
    key = ApiKey.objects.get(user=alice)
    raw = response.context["new_key"]["raw"]
    assert key.name == "backup script"
    assert raw in response.content.decode()
    assert works(raw)
    page = browser.get("/account/").content.decode()
    assert raw not in page
    assert "backup script" in page and f"{key.prefix}…" in page


def test_it_refuses_an_overlong_name(browser, alice):
    response = browser.post("/account/keys", {"name": "x" * 101})
    assert response.status_code == 400
    assert not ApiKey.objects.filter(user=alice).exists()


def test_it_lists_only_the_users_own_active_keys(browser, alice, bob):
    ApiKey.issue(alice, name="laptop")
    gone, _raw = ApiKey.issue(alice, name="old phone")
    ApiKey.objects.filter(pk=gone.pk).update(revoked_at=gone.created_at)
    ApiKey.issue(bob, name="bob's server")
    keys = browser.get("/account/").context["keys"]
    assert [k.name for k in keys] == ["laptop"]


def test_it_revokes_a_key(browser, alice):
    key, raw = ApiKey.issue(alice, name="laptop")
    response = browser.post(f"/account/keys/{key.id}/revoke", follow=True)
    assert response.redirect_chain == [("/account/", 302)]
    assert f"The key {key.prefix}… no longer works." in response.content.decode()
    assert not works(raw)


def test_bob_cannot_revoke_alices_key(bob, alice):
    key, raw = ApiKey.issue(alice)
    bobs = Client()
    bobs.force_login(bob)
    assert bobs.post(f"/account/keys/{key.id}/revoke").status_code == 404
    assert works(raw)


def test_revoking_needs_a_post_with_a_csrf_token(alice):
    key, raw = ApiKey.issue(alice)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    assert strict.get(f"/account/keys/{key.id}/revoke").status_code == 405
    assert strict.post(f"/account/keys/{key.id}/revoke").status_code == 403
    assert works(raw)


def test_it_shows_the_users_own_usage(browser, alices_history, bobs_conversation):
    response = browser.get("/account/")
    usage = response.context["usage"]
    assert (usage.conversations, usage.messages, usage.replies) == (2, 3, 3)
    assert usage.output_tokens == 6 + 3 + 2
    [fake] = usage.by_model
    assert fake.ttft_p50_ms == 42  # of 42, 44 and 42
    page = response.content.decode()
    assert '<th scope="row">fake</th>' in page and "42 ms" in page


# Imports write from a thread of their own: its connection must see the test's rows.
@pytest.mark.django_db(transaction=True)
def test_it_imports_a_file_and_says_how_much(browser, alice):
    exported = {
        "conversations": [
            {
                "title": "From elsewhere",
                "model": "fake",
                "created_at": "2025-03-01T09:00:00+00:00",
                "updated_at": "2025-03-01T09:00:00+00:00",
                "messages": [],
            }
        ]
    }
    upload = SimpleUploadedFile("history.json", json.dumps(exported).encode())
    response = browser.post("/account/import", {"file": upload}, follow=True)
    assert "Imported 1 conversations, 0 messages." in response.content.decode()
    assert Conversation.objects.for_user(alice).get().title == "From elsewhere"


# Imports write from a thread of their own: its connection must see the test's rows.
@pytest.mark.django_db(transaction=True)
def test_a_bad_file_imports_nothing_and_the_page_says_why(browser, alice):
    upload = SimpleUploadedFile("history.json", b'{"conversations": [{"title": 5}]}')
    response = browser.post("/account/import", {"file": upload}, follow=True)
    page = response.content.decode()
    assert "Nothing was imported." in page
    assert "conversations[0].title must be a string" in page
    assert not Conversation.objects.exists()
