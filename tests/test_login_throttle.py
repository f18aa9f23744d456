"""Log-in throttling, tried as an attacker would: the site's log-in and the admin's, over HTTP."""

from datetime import timedelta

import pytest
from asgiref.sync import iscoroutinefunction
from axes.models import AccessAttempt
from django.conf import settings
from django.utils.module_loading import import_string

pytestmark = pytest.mark.usefixtures("fast_password_hashing")

PASSWORD = "correct horse battery"
LOCKED = "Too many failed sign-ins"


def fail(visitor, times: int, username: str = "alice", path: str = "/login/", **kwargs):
    """`times` wrong passwords; returns the responses."""
    return [
        visitor.post_form(path, {"username": username, "password": f"guess {n}"}, **kwargs)
        for n in range(times)
    ]


def test_it_locks_a_username_after_five_failures_from_one_address(visitor, alice):
    attacker = visitor()
    first, *middle, fifth = fail(attacker, 5)
    assert first.status_code == 200 and LOCKED not in first.text
    assert all(response.status_code == 200 for response in middle)
    assert fifth.status_code == 429
    assert LOCKED in fifth.text and "Try again in 15 minutes" in fifth.text
    assert 890 <= int(fifth.headers["Retry-After"]) <= 900

    with_the_password = attacker.log_in("alice", PASSWORD)
    assert with_the_password.status_code == 429 and LOCKED in with_the_password.text
    assert not attacker.signed_in()


def test_it_leaves_the_same_username_open_from_another_address(visitor, alice):
    fail(visitor("127.0.0.1"), 5)
    elsewhere = visitor("127.0.0.2")
    assert elsewhere.log_in("alice", PASSWORD).status_code == 302
    assert elsewhere.signed_in()


def test_it_leaves_another_username_open_from_the_locked_address(visitor, alice, bob):
    attacker = visitor()
    fail(attacker, 5)
    assert attacker.log_in("bob", "another good password").status_code == 302
    assert attacker.signed_in()


def test_forged_forwarded_for_and_user_agent_headers_do_not_reset_the_count(visitor, alice):
    # 127.0.0.2 is not a proxy uvicorn trusts, so its X-Forwarded-For means nothing.
    attacker = visitor("127.0.0.2")
    for n in range(5):
        forged = {"X-Forwarded-For": f"10.0.0.{n}", "User-Agent": f"bot/{n}"}
        response = attacker.post_form(
            "/login/", {"username": "alice", "password": f"guess {n}"}, headers=forged
        )
    assert response.status_code == 429
    forged = {"X-Forwarded-For": "10.9.9.9", "User-Agent": "a browser"}
    response = attacker.post_form(
        "/login/", {"username": "alice", "password": PASSWORD}, headers=forged
    )
    assert response.status_code == 429
    assert not attacker.signed_in()


def test_it_throttles_the_admin_log_in_too(visitor, django_user_model):
    django_user_model.objects.create_superuser("root", password=PASSWORD)
    attacker = visitor()
    responses = fail(attacker, 5, username="root", path="/admin/login/")
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 429]
    assert LOCKED in responses[-1].text

    assert attacker.log_in("root", PASSWORD, path="/admin/login/").status_code == 429
    assert attacker.http.get("/admin/").status_code == 302, "the admin let a locked pair in"


def test_the_site_and_the_admin_share_one_count(visitor, alice):
    attacker = visitor()
    fail(attacker, 3, path="/admin/login/")
    assert [r.status_code for r in fail(attacker, 2)] == [200, 429]


def age_attempts(minutes: float) -> None:
    """Move every recorded failure `minutes` into the past, as if that much time went by."""
    for attempt in AccessAttempt.objects.all():
        attempt.attempt_time -= timedelta(minutes=minutes)
        attempt.save(update_fields=["attempt_time"])


def test_the_lock_ends_after_fifteen_minutes(visitor, alice):
    attacker = visitor()
    fail(attacker, 5)
    age_attempts(14.5)
    assert attacker.log_in("alice", PASSWORD).status_code == 429, "it ended early"
    age_attempts(0.6)
    assert attacker.log_in("alice", PASSWORD).status_code == 302
    assert attacker.signed_in()


def test_failures_more_than_fifteen_minutes_apart_do_not_add_up(visitor, alice):
    person = visitor()
    fail(person, 4)
    age_attempts(15.1)
    assert fail(person, 1)[0].status_code == 200
    assert person.log_in("alice", PASSWORD).status_code == 302


def test_a_successful_log_in_starts_the_count_again(visitor, alice):
    person = visitor()
    fail(person, 4)
    assert person.log_in("alice", PASSWORD).status_code == 302
    person.http.post("/logout/", data={"csrfmiddlewaretoken": person.http.cookies["csrftoken"]})
    assert [r.status_code for r in fail(person, 4)] == [200] * 4


@pytest.mark.parametrize("path", ["/api/models", "/v1/models"])
def test_the_streaming_api_is_not_throttled_by_session_log_ins(visitor, api, path):
    fail(visitor(), 5)
    assert api.get(path).status_code == 200


def test_the_throttle_middleware_runs_on_the_event_loop():
    """No thread hop in front of /api/ and /v1/: the middleware must be async under ASGI."""
    (path,) = [entry for entry in settings.MIDDLEWARE if entry.startswith("axes.")]

    async def view(request):
        return None

    assert iscoroutinefunction(import_string(path)(view))
