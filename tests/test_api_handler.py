"""The API's own middleware chain (chat.handlers), as a live server serves it: the same
headers, sessions and CSRF checks as the pages' full chain, without its thread hops."""

import pytest

pytestmark = pytest.mark.django_db(transaction=True)

# What the site's middlewares add to every response; the API's chain must add them alike.
SHARED_HEADERS = [
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Cross-Origin-Opener-Policy",
    "X-Frame-Options",
    "Content-Security-Policy",
]


def signed_in(visitor, alice):
    browser = visitor()
    assert browser.log_in("alice", "correct horse battery").status_code == 302
    return browser


def test_api_answers_carry_the_headers_pages_do(api, visitor):
    page = visitor().http.get("/login/")
    answer = api.get("/api/conversations")
    assert answer.status_code == 200
    for name in SHARED_HEADERS:
        assert answer.headers.get(name) == page.headers[name], name
    assert answer.headers["Cache-Control"] == "no-store"
    assert len(answer.headers["X-Request-ID"]) >= 16
    assert int(answer.headers["Content-Length"]) == len(answer.content)


def test_a_session_uses_the_api_with_its_csrf_token_and_not_without(visitor, alice):
    browser = signed_in(visitor, alice)
    token = browser.http.cookies["csrftoken"]
    listed = browser.http.get("/api/conversations")
    assert listed.status_code == 200
    assert "Cookie" in listed.headers.get("Vary", "")  # the answer depends on the session
    refused = browser.http.post("/api/conversations", json={"title": "x"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "csrf_failed"
    made = browser.http.post(
        "/api/conversations", json={"title": "Mine"}, headers={"X-CSRFToken": token}
    )
    assert made.status_code == 201
    assert made.json()["title"] == "Mine"


def test_a_session_logged_out_elsewhere_no_longer_reaches_the_api(visitor, alice):
    browser = signed_in(visitor, alice)
    assert browser.http.get("/api/conversations").status_code == 200
    browser.post_form("/logout/", {})
    assert browser.http.get("/api/conversations").status_code == 401


def test_an_unknown_api_path_is_a_json_404(api):
    answer = api.get("/api/no-such-thing")
    assert answer.status_code == 404
    assert answer.headers["Cache-Control"] == "no-store"
