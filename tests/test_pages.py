"""The pages' headers and markup: a strict CSP, no inline code, vendored libraries served."""

import re

import pytest
from django.conf import settings

pytestmark = pytest.mark.django_db

VENDORED = [
    "vendor/marked/marked.esm.js",
    "vendor/dompurify/purify.es.js",
    "vendor/highlight/highlight.min.js",
    "chat/app.js",
]


def test_it_sends_a_content_security_policy_without_unsafe_inline(client):
    policy = client.get("/login/")["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy
    assert "object-src 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


def test_the_chat_page_has_no_inline_script_or_style(client, alice):
    client.force_login(alice)
    html = client.get("/c/7/").content.decode()
    assert 'data-conversation-id="7"' in html
    assert re.search(r'<script type="module" src="/static/chat/app\.js">', html)
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "an inline <script>"
    assert not re.search(r"<style|\sstyle=", html), "an inline style"


@pytest.mark.parametrize("path", VENDORED)
def test_it_serves_the_front_end_without_debug(client, path):
    assert settings.DEBUG is False
    response = client.get(f"/static/{path}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")


def test_the_chat_page_links_to_the_account_page(client, alice):
    client.force_login(alice)
    html = client.get("/").content.decode()
    assert 'href="/account/"' in html
