"""The chat page when a limit refuses a message: plain words, when to try again, nothing lost."""

import re

import pytest
from playwright.sync_api import expect

from chat.models import Message
from tests.browser.test_chat_page import last_reply, send

pytestmark = pytest.mark.browser


def test_it_says_in_plain_words_when_to_send_again_after_too_many_a_minute(chat, settings):
    settings.CHAT_USER_REPLIES_PER_MINUTE = 1
    send(chat, "Hello")
    expect(last_reply(chat)).to_have_attribute("data-status", "complete")

    send(chat, "One more, please")

    banner = chat.locator("#banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text(
        re.compile(r"You have started 1 reply in the last minute.*try again in \d+ seconds?\.")
    )
    expect(chat.get_by_label("Message", exact=True)).to_have_value("One more, please")
    expect(chat.locator(".message.user")).to_have_count(1)
    assert Message.objects.filter(role="user").count() == 1


def test_it_says_when_the_days_tokens_are_spent_and_when_they_come_back(chat, settings):
    settings.CHAT_USER_OUTPUT_TOKENS_PER_DAY = 10
    send(chat, "Hello")
    expect(last_reply(chat)).to_have_attribute("data-status", "complete")

    send(chat, "And another")

    banner = chat.locator("#banner")
    expect(banner).to_contain_text("You have used today's 10 output tokens")
    expect(banner).to_contain_text(re.compile(r"You can send again( tomorrow)? at \d"))
    assert Message.objects.filter(role="user").count() == 1
