"""A title written by the model reaches the sidebar of the open page without a reload."""

import pytest
from playwright.sync_api import expect

from tests.browser.test_chat_page import last_reply, send

pytestmark = pytest.mark.browser

STILL_HERE = "() => { window.stillHere = true; }"


def test_a_title_written_by_the_model_appears_in_the_sidebar(chat):
    chat.evaluate(STILL_HERE)
    send(chat, "echo Otters holding hands")
    expect(last_reply(chat)).to_have_attribute("data-status", "complete")
    # The fake model echoes the question: its title drops the "echo".
    expect(chat.locator("#conversations a")).to_have_text(["Otters holding hands"])
    expect(chat.get_by_role("heading", level=1)).to_have_text("Otters holding hands")
    assert chat.evaluate("() => window.stillHere"), "the page was reloaded"
