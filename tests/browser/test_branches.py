"""Branches on the chat page: versions of replies and questions, paged through in place."""

import pytest
from playwright.sync_api import expect

from chat.models import Conversation, Message
from tests.browser.test_chat_page import last_reply, send, stored, wait_for_words

pytestmark = pytest.mark.browser


def texts(page) -> list[str]:
    return [t.strip() for t in page.locator(".message .body").all_text_contents()]


def mark_page(page):
    """A flag that a reload would wipe: the page must switch branches in place."""
    page.evaluate("() => { window.notReloaded = true; }")


def not_reloaded(page) -> bool:
    return page.evaluate("() => window.notReloaded === true")


def test_it_pages_through_the_versions_of_a_reply(chat):
    send(chat, "echo one")
    first = last_reply(chat)
    expect(first).to_have_attribute("data-status", "complete")
    first_id = first.get_attribute("data-id")
    expect(first.locator(".versions")).to_be_hidden()

    first.get_by_role("button", name="Regenerate reply").click()
    second = last_reply(chat)
    expect(second).not_to_have_attribute("data-id", first_id)
    expect(second).to_have_attribute("data-status", "complete")
    second_id = second.get_attribute("data-id")
    versions = second.get_by_role("group", name="Version 2 of 2")
    expect(versions).to_contain_text("2 / 2")
    mark_page(chat)

    # The keyboard alone: focus the previous-version button and press Enter.
    previous = second.get_by_role("button", name="Previous version of this reply")
    previous.focus()
    chat.keyboard.press("Enter")
    expect(last_reply(chat)).to_have_attribute("data-id", first_id)
    expect(last_reply(chat).get_by_role("group", name="Version 1 of 2")).to_contain_text("1 / 2")
    expect(chat.get_by_role("button", name="Next version of this reply")).to_be_focused()
    expect(chat.locator("#announcer")).to_have_text("Version 1 of 2 shown.")
    conversation = Conversation.objects.get()
    assert conversation.current_message_id == int(first_id)

    chat.keyboard.press("Enter")
    expect(last_reply(chat)).to_have_attribute("data-id", second_id)
    assert not_reloaded(chat)
    assert texts(chat) == ["echo one", "one"]

    chat.reload()
    expect(last_reply(chat)).to_have_attribute("data-id", second_id)
    expect(last_reply(chat).locator(".versions")).to_contain_text("2 / 2")


def test_it_edits_an_earlier_question_and_keeps_the_old_branch(chat):
    for text in ("echo one", "echo two"):
        send(chat, text)
        expect(last_reply(chat)).to_have_attribute("data-status", "complete")
    expect(chat.locator(".message")).to_have_count(4)
    mark_page(chat)

    question = chat.locator(".message.user").first
    question.hover()
    question.get_by_role("button", name="Edit message").click()
    editor = chat.get_by_label("Edit your message")
    expect(editor).to_have_value("echo one")
    editor.fill("echo uno")
    editor.press("Enter")

    expect(last_reply(chat)).to_have_attribute("data-status", "complete")
    assert texts(chat) == ["echo uno", "uno"]
    edited = chat.locator(".message.user").first
    expect(edited.get_by_role("group", name="Version 2 of 2")).to_contain_text("2 / 2")

    edited.get_by_role("button", name="Previous version of this message").click()
    expect(chat.locator(".message")).to_have_count(4)
    assert texts(chat) == ["echo one", "one", "echo two", "two"]
    expect(chat.locator(".message.user").first.locator(".versions")).to_contain_text("1 / 2")
    assert not_reloaded(chat)
    assert Message.objects.count() == 6, "nothing was deleted"

    # Continue the old branch: the new question follows what is shown.
    send(chat, "echo three")
    expect(last_reply(chat).locator(".body")).to_have_text("three")
    assert texts(chat) == ["echo one", "one", "echo two", "two", "echo three", "three"]


def test_stop_and_reattach_work_on_a_regenerated_earlier_reply(chat, settings):
    for text in ("Tell me a story", "echo and then?"):
        send(chat, text)
        expect(last_reply(chat)).to_have_attribute("data-status", "complete")
    settings.CHAT_FAKE_TOKENS_PER_SECOND = 10
    chat.locator(".message.assistant").first.get_by_role("button", name="Regenerate reply").click()
    expect(chat.locator(".message")).to_have_count(2)
    wait_for_words(last_reply(chat), 2)

    chat.reload()
    reply = last_reply(chat)
    expect(reply).to_have_attribute("data-status", "streaming")
    expect(reply.locator(".versions")).to_contain_text("2 / 2")
    wait_for_words(reply, 4)
    chat.get_by_role("button", name="Stop the reply").click()

    expect(reply).to_have_attribute("data-status", "stopped")
    message = stored(reply)
    assert message.status == "stopped"
    assert reply.locator(".body").text_content().strip() == message.content


def test_the_chat_settings_are_stored_and_used(chat):
    chat.get_by_role("button", name="Chat settings").click()
    chat.get_by_label("Temperature").fill("0.4")
    chat.get_by_label("Longest reply").fill("5")
    chat.get_by_role("button", name="Save settings").click()
    send(chat, "Hello")
    reply = last_reply(chat)
    expect(reply).to_have_attribute("data-status", "complete")
    conversation = Conversation.objects.get()
    assert (conversation.temperature, conversation.max_tokens) == (0.4, 5)
    assert stored(reply).output_tokens == 5

    chat.get_by_role("button", name="Chat settings").click()
    expect(chat.get_by_label("Longest reply")).to_have_value("5")
    chat.get_by_label("Longest reply").fill("")
    chat.get_by_role("button", name="Save settings").click()
    expect(chat.get_by_role("button", name="Chat settings")).to_have_attribute(
        "title", "Chat settings: temperature 0.4"
    )
    conversation.refresh_from_db()
    assert conversation.max_tokens is None
