"""What must not leak: exception text from /healthz, private answers into caches."""

import httpx
import pytest

from tests import processes
from tests.conftest import send

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    "path",
    ["/api/models", "/api/conversations", "/api/conversations/999999", "/api/export", "/v1/models"],
)
def test_api_answers_are_never_stored_by_caches(api, path):
    response = api.get(path)

    assert response.headers["Cache-Control"] == "no-store"


def test_errors_are_never_stored_either(live_server_url):
    for path in ("/api/conversations", "/v1/models"):
        response = httpx.get(live_server_url + path)
        assert response.status_code == 401
        assert response.headers["Cache-Control"] == "no-store"


def test_the_event_stream_keeps_its_no_cache(api, conversation):
    with send(api, conversation["id"], "Hello") as stream:
        stream.all()
        assert stream.response.headers["Cache-Control"] == "no-cache"


def test_the_account_page_is_never_stored(live_server_url, client, alice):
    client.force_login(alice)
    cookies = {"sessionid": client.cookies["sessionid"].value}

    page = httpx.get(live_server_url + "/account/", cookies=cookies)

    assert page.status_code == 200
    assert "no-store" in page.headers["Cache-Control"]


def test_the_account_page_that_shows_a_new_key_is_never_stored(live_server_url, client, alice):
    client.force_login(alice)
    client.get("/account/")  # sets the CSRF cookie
    cookies = {name: morsel.value for name, morsel in client.cookies.items()}
    headers = {"X-CSRFToken": cookies["csrftoken"], "Origin": live_server_url}

    page = httpx.post(
        live_server_url + "/account/keys", data={"name": "laptop"}, cookies=cookies, headers=headers
    )

    assert page.status_code == 200 and "cs_" in page.text
    assert "no-store" in page.headers["Cache-Control"]


def test_the_health_check_names_what_is_down_without_its_exception_text(tmp_path):
    port = processes.free_port()
    env = processes.environment("", DATABASE_URL=f"postgres://postgres@127.0.0.1:{port}/nothing")
    web, url = processes.start_web(env, tmp_path, "no-database-web")
    try:
        response = httpx.get(url + "/healthz", timeout=30)
    finally:
        web.stop()

    assert response.status_code == 503
    assert response.json() == {
        "error": {"code": "service_unavailable", "message": "The database is unreachable."}
    }
    # The log has the driver's words, with the address it could not reach.
    assert str(port) in web.output()
