"""A shared link, made on the chat page and opened by someone with no account."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.test_chat_page import last_reply, send

pytestmark = pytest.mark.browser

REPLY = (
    "echo Otters **hold hands**.\n\n```python\nprint('float')\n```\n\n<img src=x onerror=alert(1)>"
)


def test_the_shared_page_opens_without_a_session_and_renders_like_the_chat(chat, stranger):
    send(chat, REPLY)
    reply = last_reply(chat)
    expect(reply).to_have_attribute("data-status", "complete")
    chat.get_by_role("button", name="Share").click()
    link = chat.get_by_label("Link")
    expect(link).to_have_value(re.compile(r"^http://127\.0\.0\.1:\d+/s/[\w-]{24}/$"))
    url = link.input_value()

    page = stranger.new_page()
    response = page.goto(url)
    assert response.status == 200
    assert response.headers["x-robots-tag"] == "noindex, nofollow"
    shared = page.locator(".message.assistant .body")
    expect(shared.locator("strong")).to_have_text("hold hands")
    expect(shared.locator(".code-block .copy-code")).to_be_visible()
    expect(shared.locator("pre code.hljs.language-python")).to_be_visible()
    # The same markup, the same sanitising and highlighting as on the chat page.
    assert shared.inner_html() == reply.locator(".body").inner_html()
    expect(page.locator(".message.user .body")).to_have_text(REPLY)
    expect(page.locator('meta[name="robots"]')).to_have_attribute("content", "noindex, nofollow")
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)

    send_later = "echo written after sharing"
    chat.get_by_role("button", name="Done").click()
    send(chat, send_later)
    expect(last_reply(chat)).to_have_attribute("data-status", "complete")
    page.reload()
    expect(shared.locator("strong")).to_have_text("hold hands")
    expect(page.get_by_text("written after sharing")).to_have_count(0)

    chat.get_by_role("button", name="Share").click()
    chat.get_by_role("button", name="Stop sharing").click()
    expect(chat.get_by_role("dialog")).to_be_hidden()
    assert page.goto(url).status == 404
