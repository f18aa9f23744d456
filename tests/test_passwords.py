"""Changing a password, resetting it by e-mail (over real SMTP), and the e-mail settings."""

import json
import re
import subprocess
import sys

import pytest

from tests.smtp_sink import SmtpSink

pytestmark = pytest.mark.usefixtures("fast_password_hashing")

ROOT = __file__.rsplit("/tests/", 1)[0]
OLD = "correct horse battery"
NEW = "a brand new passphrase"


def test_it_changes_the_password(visitor, alice):
    person = visitor()
    person.log_in("alice", OLD)
    page = person.http.get("/account/password/")
    assert page.status_code == 200 and "Change your password" in page.text
    response = person.post_form(
        "/account/password/",
        {"old_password": OLD, "new_password1": NEW, "new_password2": NEW},
    )
    assert response.status_code == 302 and response.headers["location"] == "/account/password/done/"
    assert person.signed_in(), "changing the password signed this browser out"
    assert visitor().log_in("alice", OLD).status_code == 200
    assert visitor().log_in("alice", NEW).status_code == 302


def test_it_refuses_a_wrong_old_password(visitor, alice):
    person = visitor()
    person.log_in("alice", OLD)
    response = person.post_form(
        "/account/password/",
        {"old_password": "a guess", "new_password1": NEW, "new_password2": NEW},
    )
    assert response.status_code == 200 and "old password was entered incorrectly" in response.text
    alice.refresh_from_db()
    assert alice.check_password(OLD)


def test_changing_the_password_needs_a_signed_in_user(visitor):
    response = visitor().http.get("/account/password/")
    assert response.status_code == 302 and response.headers["location"].startswith("/login/")


@pytest.fixture
def smtp(settings):
    """A real SMTP server the site sends its e-mail to."""
    with SmtpSink() as sink:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", sink.port
        settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.DEFAULT_FROM_EMAIL = "chatsite <chat@example.com>"
        yield sink


def test_it_resets_a_forgotten_password_by_email(visitor, alice, smtp, live_server_url):
    alice.email = "alice@example.com"
    alice.save()
    person = visitor()
    response = person.post_form("/password-reset/", {"email": "alice@example.com"})
    assert response.headers["location"] == "/password-reset/sent/"

    message = smtp.wait_for_message()
    assert message["To"] == "alice@example.com" and message["From"] == "chatsite <chat@example.com>"
    assert message["Subject"] == "Reset your chatsite password"
    body = message.get_content()
    assert '"alice"' in body
    link = re.search(r"http://\S+/password-reset/\S+/", body).group(0)
    assert link.startswith(live_server_url)

    form = person.http.get(link, follow_redirects=True)
    assert "Choose a new password" in form.text and "<form" in form.text
    done = person.post_form(str(form.url), {"new_password1": NEW, "new_password2": NEW})
    assert done.headers["location"] == "/password-reset/done/"
    assert visitor().log_in("alice", NEW).status_code == 302
    assert visitor().log_in("alice", OLD).status_code == 200

    again = person.http.get(link, follow_redirects=True)
    assert "does not work any more" in again.text and "<form" not in again.text


def test_a_reset_for_an_unknown_address_looks_the_same_and_sends_nothing(visitor, alice, smtp):
    response = visitor().post_form("/password-reset/", {"email": "nobody@example.com"})
    assert response.headers["location"] == "/password-reset/sent/"
    assert smtp.messages == []


def email_settings(**env) -> dict:
    """The e-mail settings chatsite starts with under `env` (in a fresh interpreter)."""
    names = ["EMAIL_BACKEND", "EMAIL_HOST", "EMAIL_PORT", "EMAIL_HOST_USER", "EMAIL_HOST_PASSWORD"]
    names += ["EMAIL_USE_TLS", "EMAIL_USE_SSL", "DEFAULT_FROM_EMAIL"]
    found = f"{{name: getattr(s, name, None) for name in {names}}}"
    code = f"import json, chatsite.settings as s; print(json.dumps({found}))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "SECRET_KEY": "test", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode:
        raise RuntimeError(result.stderr)
    return json.loads(result.stdout)


def test_without_settings_email_goes_to_the_console():
    assert email_settings()["EMAIL_BACKEND"] == "django.core.mail.backends.console.EmailBackend"


def test_email_url_configures_smtp():
    found = email_settings(
        EMAIL_URL="smtp+tls://me%40example.com:p%2Fss@mail.example.com:2525",
        DEFAULT_FROM_EMAIL="chat <chat@example.com>",
    )
    assert found == {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "mail.example.com",
        "EMAIL_PORT": 2525,
        "EMAIL_HOST_USER": "me@example.com",
        "EMAIL_HOST_PASSWORD": "p/ss",
        "EMAIL_USE_TLS": True,
        "EMAIL_USE_SSL": None,
        "DEFAULT_FROM_EMAIL": "chat <chat@example.com>",
    }
    assert email_settings(EMAIL_URL="smtps://mail.example.com")["EMAIL_PORT"] == 465


def test_the_usual_email_settings_configure_smtp():
    found = email_settings(
        EMAIL_HOST="mail.example.com", EMAIL_PORT="587", EMAIL_HOST_USER="me",
        EMAIL_HOST_PASSWORD="secret", EMAIL_USE_TLS="true",
    )  # fmt: skip
    assert found["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert (found["EMAIL_HOST"], found["EMAIL_PORT"], found["EMAIL_USE_TLS"]) == (
        "mail.example.com", 587, True,
    )  # fmt: skip
    assert (found["EMAIL_HOST_USER"], found["EMAIL_HOST_PASSWORD"]) == ("me", "secret")


@pytest.mark.parametrize(
    "env, named",
    [
        ({"EMAIL_URL": "http://mail.example.com"}, "EMAIL_URL"),
        ({"EMAIL_URL": "smtp://mail.example.com:port"}, "EMAIL_URL"),
        ({"EMAIL_PORT": "twenty-five"}, "EMAIL_PORT"),
        ({"EMAIL_USE_TLS": "maybe"}, "EMAIL_USE_TLS"),
    ],
)
def test_bad_email_settings_stop_the_start_up_naming_the_variable(env, named):
    with pytest.raises(RuntimeError, match=named):
        email_settings(**env)


def test_a_bad_email_url_is_not_echoed_with_its_password():
    with pytest.raises(RuntimeError) as failure:
        email_settings(EMAIL_URL="smtp://me:hunter2@mail.example.com:port")
    assert "hunter2" not in str(failure.value)
