"""Deployment settings, as a real process starts with them: the key, HTTPS, check --deploy."""

import os
import re
import secrets
import subprocess
import sys

import httpx
import pytest
import yaml

from tests import processes

KEY = secrets.token_urlsafe(50)
HOST = "chat.example.com"


def environment(**variables) -> dict:
    """This process's environment without any key or debug setting, plus `variables`."""
    drop = {"SECRET_KEY", "SECRET_KEY_FILE", "DEBUG", "CHAT_HTTPS", "ALLOWED_HOSTS"}
    env = {name: value for name, value in os.environ.items() if name not in drop}
    return env | variables


def manage(env: dict, *arguments: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "manage.py", *arguments]
    return subprocess.run(
        command, cwd=processes.ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def start_server(env: dict) -> subprocess.CompletedProcess:
    """uvicorn on the site, given a few seconds to fail at start-up."""
    port = str(processes.free_port())
    command = [sys.executable, "-m", "uvicorn", "chatsite.asgi:application", "--port", port]
    try:
        return subprocess.run(
            command, cwd=processes.ROOT, env=env, capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the server started despite a setting it must refuse")


@pytest.mark.parametrize("debug", [None, "false"])
def test_it_refuses_to_start_without_a_secret_key_when_debug_is_off(debug):
    env = environment() if debug is None else environment(DEBUG=debug)

    checked = manage(env, "check")
    served = start_server(env)

    for process in (checked, served):
        assert process.returncode != 0
        assert "SECRET_KEY (or SECRET_KEY_FILE) must be set" in process.stderr


def test_it_starts_with_the_key_in_a_file(tmp_path):
    key_file = tmp_path / "secret_key"
    key_file.write_text(KEY + "\n")

    checked = manage(environment(SECRET_KEY_FILE=str(key_file)), "check")

    assert checked.returncode == 0, checked.stderr


def test_debug_alone_runs_on_a_development_key():
    checked = manage(environment(DEBUG="true"), "check")

    assert checked.returncode == 0, checked.stderr


def test_the_deploy_check_passes_with_a_key_https_and_a_host_name():
    env = environment(DEBUG="false", SECRET_KEY=KEY, CHAT_HTTPS="true", ALLOWED_HOSTS=HOST)

    checked = manage(env, "check", "--deploy", "--fail-level", "WARNING")

    assert checked.returncode == 0, checked.stderr
    assert "no issues" in checked.stdout


def test_without_https_the_deploy_check_names_what_is_missing():
    env = environment(DEBUG="false", SECRET_KEY=KEY, ALLOWED_HOSTS=HOST)

    checked = manage(env, "check", "--deploy", "--fail-level", "WARNING")

    assert checked.returncode != 0
    found = set(re.findall(r"security\.(W\d+)", checked.stderr))
    assert {"W004", "W008", "W012", "W016"} <= found


def test_the_retired_worker_slots_variable_stops_the_start_naming_its_replacement():
    env = environment(DEBUG="true", CHAT_WORKER_SLOTS="8")

    checked = manage(env, "check")

    assert checked.returncode != 0
    assert "CHAT_WORKER_SLOTS is gone: set CHAT_LOCAL_MAX_CONCURRENCY" in checked.stderr


def test_a_default_model_nobody_offers_stops_the_start_naming_the_models_available():
    env = environment(
        DEBUG="true", CHAT_DEFAULT_MODEL="gpt-nonexistent", CHAT_LOCAL_ENABLED="false",
        OPENAI_MODELS="upstream-a,upstream-b", CHAT_FAKE_MODEL="false",
    )  # fmt: skip

    served = start_server(env)

    assert served.returncode != 0
    assert "CHAT_DEFAULT_MODEL is 'gpt-nonexistent', which no provider offers" in served.stderr
    assert "the models available: upstream-a, upstream-b." in served.stderr


def test_a_default_model_on_offer_starts():
    env = environment(DEBUG="true", CHAT_LOCAL_ENABLED="false", OPENAI_MODELS="upstream-a")

    checked = manage(env, "check")

    assert checked.returncode == 0, checked.stderr


@pytest.fixture
def https_site(transactional_db, django_user_model, tmp_path):
    """The site in its own process with CHAT_HTTPS=true, as behind a TLS-terminating proxy."""
    django_user_model.objects.create_user("carol", password="a long enough password")
    env = processes.environment(
        "", DEBUG="false", SECRET_KEY=KEY, CHAT_HTTPS="true", ALLOWED_HOSTS=HOST
    )
    web, url = processes.start_web(env, tmp_path, "https-web")
    yield url, env
    web.stop()


def behind_proxy(url: str) -> httpx.Client:
    headers = {"Host": HOST, "X-Forwarded-Proto": "https"}
    return httpx.Client(base_url=url, headers=headers, timeout=30)


def test_https_redirects_plain_http(https_site):
    url, _env = https_site

    response = httpx.get(url + "/login/", headers={"Host": HOST}, timeout=30)

    assert response.status_code == 301
    assert response.headers["Location"] == f"https://{HOST}/login/"


def test_https_sends_hsts_and_secure_cookies(https_site):
    url, _env = https_site
    with behind_proxy(url) as client:
        page = client.get("/login/")
        assert page.status_code == 200
        hsts = page.headers["Strict-Transport-Security"]
        assert hsts == "max-age=31536000; includeSubDomains; preload"
        assert "secure" in page.headers["Set-Cookie"].lower()

        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]
        form = {"username": "carol", "password": "a long enough password"}
        # httpx keeps Secure cookies for https URLs; the proxy would have passed it on.
        cookie = f"csrftoken={page.cookies['csrftoken']}"
        origin = f"https://{HOST}"
        signed_in = client.post(
            "/login/",
            data={**form, "csrfmiddlewaretoken": token},
            headers={"Cookie": cookie, "Referer": origin + "/login/", "Origin": origin},
        )

    assert signed_in.status_code == 302, signed_in.text
    session = [c for c in signed_in.headers.get_list("Set-Cookie") if c.startswith("sessionid=")]
    assert session and "secure" in session[0].lower() and "httponly" in session[0].lower()


def test_the_compose_health_check_passes_over_plain_http(https_site):
    url, env = https_site
    compose = yaml.safe_load((processes.ROOT / "docker-compose.yml").read_text())
    program = compose["services"]["web"]["healthcheck"]["test"][-1]

    checked = subprocess.run(
        [sys.executable, "-c", program.replace("http://127.0.0.1:8000", url)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert checked.returncode == 0, checked.stderr
