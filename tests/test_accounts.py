"""Signing up, in and out, pages behind the log-in, and API keys."""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from chat.auth import user_for_key
from chat.models import ApiKey, hash_key

pytestmark = pytest.mark.django_db


def test_it_signs_up_and_lands_on_the_chat(client, django_user_model):
    response = client.post(
        "/signup/",
        {
            "username": "carol",
            "password1": "a sturdy passphrase",
            "password2": "a sturdy passphrase",
        },
    )
    assert response.status_code == 302 and response.url == "/"
    assert django_user_model.objects.filter(username="carol").exists()
    assert client.get("/").status_code == 200


def test_it_refuses_a_mismatched_password_at_sign_up(client, django_user_model):
    body = {"username": "carol", "password1": "a sturdy passphrase", "password2": "different"}
    response = client.post("/signup/", body)
    assert response.status_code == 200
    assert not django_user_model.objects.filter(username="carol").exists()


def test_it_logs_in_and_out(client, alice):
    response = client.post("/login/", {"username": "alice", "password": "correct horse battery"})
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    client.post("/logout/")
    assert client.get("/").status_code == 302


def test_pages_need_a_signed_in_user(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.url.startswith("/login/")


def test_a_session_post_without_csrf_token_is_refused(alice):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    response = browser.post("/api/conversations", {}, content_type="application/json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "csrf_failed"


def test_a_session_post_with_the_csrf_token_works(alice):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    browser.get("/")
    token = browser.cookies["csrftoken"].value
    response = browser.post(
        "/api/conversations", {}, content_type="application/json", headers={"X-CSRFToken": token}
    )
    assert response.status_code == 201


def test_a_bearer_request_needs_no_csrf_token(alice):
    _key, raw = ApiKey.issue(alice)
    script = Client(enforce_csrf_checks=True)
    response = script.post(
        "/api/conversations", {}, content_type="application/json",
        headers={"Authorization": f"Bearer {raw}"},
    )  # fmt: skip
    assert response.status_code == 201


def test_create_api_key_prints_a_key_once_and_stores_only_its_hash(alice, capsys):
    call_command("create_api_key", "alice")
    raw = capsys.readouterr().out.strip()
    key = ApiKey.objects.get(user=alice)
    assert raw.startswith("cs_") and len(raw) > 30
    assert key.key_hash == hash_key(raw) != raw
    assert raw not in {key.prefix, key.name}


def test_create_api_key_can_create_the_user(django_user_model, capsys):
    call_command("create_api_key", "dave", "--create-user")
    assert django_user_model.objects.filter(username="dave").exists()
    assert capsys.readouterr().out.strip().startswith("cs_")


def test_create_api_key_refuses_an_unknown_user_without_the_flag():
    with pytest.raises(CommandError, match="--create-user"):
        call_command("create_api_key", "nobody")


def test_a_revoked_key_is_refused(alice):
    key, raw = ApiKey.issue(alice)
    key.revoked_at = key.created_at
    key.save()
    response = Client().get("/api/models", headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 401


def test_a_key_of_a_deactivated_user_is_refused(alice):
    _key, raw = ApiKey.issue(alice)
    alice.is_active = False
    alice.save()
    response = Client().get("/api/models", headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 401


def test_a_keys_last_use_is_stamped_at_most_once_a_minute(alice):
    key, raw = ApiKey.issue(alice)
    assert user_for_key(raw) == alice
    first = ApiKey.objects.get(pk=key.pk).last_used_at
    assert first is not None
    assert user_for_key(raw) == alice
    assert ApiKey.objects.get(pk=key.pk).last_used_at == first  # within the minute: kept
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=first - timedelta(minutes=2))
    assert user_for_key(raw).username == "alice"
    assert ApiKey.objects.get(pk=key.pk).last_used_at > first
