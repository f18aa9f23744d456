"""The chat page in headless Chromium: sign-up, live replies, stop, reattach, safety, sidebar."""

import re

import pytest
from playwright.sync_api import expect

from chat import providers
from chat.models import Conversation, Message
from tests.browser.conftest import eventually, wait_until_ready

pytestmark = pytest.mark.browser

# Records every distinct text the streaming reply showed, as the page rendered it.
RECORD_PARTIALS = """() => {
  window.partials = [];
  const list = document.getElementById("messages");
  new MutationObserver(() => {
    const reply = list.querySelector(".message.assistant:last-child");
    if (!reply || reply.dataset.status !== "streaming") return;
    const text = reply.querySelector(".body").textContent.trim();
    if (text && text !== window.partials.at(-1)) window.partials.push(text);
  }).observe(list, { subtree: true, childList: true, characterData: true, attributes: true });
}"""


# Notes whether a reply, while still empty, showed its typing indicator.
RECORD_TYPING = """() => {
  window.sawTyping = false;
  const list = document.getElementById("messages");
  new MutationObserver(() => {
    const reply = list.querySelector(".message.assistant:last-child");
    const typing = reply && reply.querySelector(".typing");
    if (typing && !typing.hidden && !reply.querySelector(".body").textContent.trim()) {
      window.sawTyping = true;
    }
  }).observe(list, { subtree: true, childList: true, attributes: true });
}"""


def send(page, text: str):
    box = page.get_by_label("Message", exact=True)
    box.fill(text)
    box.press("Enter")


def last_reply(page):
    return page.locator(".message.assistant").last


def shown_text(reply) -> str:
    return reply.locator(".body").text_content().strip()


def stored(reply) -> Message:
    return Message.objects.get(pk=int(reply.get_attribute("data-id")))


def wait_for_words(reply, count: int):
    expect(reply.locator(".body")).to_have_text(re.compile(rf"^\s*(\S+\s+){{{count}}}"))


def test_it_signs_up_and_streams_a_reply_that_grows_before_it_is_done(page, settings):
    settings.CHAT_FAKE_TOKENS_PER_SECOND = 20
    settings.CHAT_FAKE_TOKENS = 20
    page.goto("/signup/")
    page.get_by_label("Username").fill("carol")
    page.get_by_label(re.compile(r"^Password:?$")).fill("a sturdy passphrase")
    page.get_by_label("Password confirmation").fill("a sturdy passphrase")
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url("**/")
    wait_until_ready(page)
    expect(page.get_by_label("Model")).to_have_value("fake")
    page.evaluate(RECORD_PARTIALS)

    send(page, "Hello there")

    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", "complete")
    final = shown_text(reply)
    partials = page.evaluate("window.partials")
    assert all(final.startswith(p) for p in partials), (partials, final)
    growing = [p for p in partials if p != final]
    assert len(growing) >= 2, f"the reply was not rendered while it grew: {partials}"
    assert final == stored(reply).content
    assert stored(reply).status == "complete"
    stats = re.compile(r"^fake · \d+ ms to first token · [\d.]+ tok/s$")
    expect(reply.locator(".stats")).to_have_text(stats)
    expect(page.locator(".message.user .body")).to_have_text("Hello there")
    expect(page).to_have_url(re.compile(r"/c/\d+/$"))
    # Titled by its first line, then by the (fake) model, which writes its filler words.
    expect(page.locator("#conversations a")).to_have_text(
        ["The quick brown fox jumps over the lazy"]
    )


def test_it_shows_a_typing_indicator_until_the_first_token(chat):
    chat.evaluate(RECORD_TYPING)
    send(chat, "Hello")
    reply = last_reply(chat)
    expect(reply).to_have_attribute("data-status", "complete")
    assert chat.evaluate("window.sawTyping"), "no typing indicator before the first token"
    expect(reply.locator(".typing")).to_be_hidden()


def test_enter_sends_and_shift_enter_starts_a_new_line(chat):
    box = chat.get_by_label("Message", exact=True)
    box.fill("echo first line")
    box.press("Shift+Enter")
    box.press_sequentially("second line")
    expect(box).to_have_value("echo first line\nsecond line")
    expect(chat.locator(".message")).to_have_count(0)
    box.press("Enter")
    expect(box).to_have_value("")
    expect(last_reply(chat)).to_have_attribute("data-status", "complete")
    expect(chat.locator(".message.user .body")).to_have_text("echo first line\nsecond line")


def test_stop_keeps_the_partial_reply_marked_stopped_on_the_server(chat, settings):
    settings.CHAT_FAKE_TOKENS_PER_SECOND = 10
    send(chat, "Tell me a long story")
    reply = last_reply(chat)
    wait_for_words(reply, 2)

    chat.get_by_role("button", name="Stop the reply").click()

    expect(reply).to_have_attribute("data-status", "stopped")
    expect(reply.locator(".badge")).to_have_text("Stopped")
    message = stored(reply)
    assert message.status == "stopped"
    assert 0 < len(message.content.split()) < 40
    assert shown_text(reply) == message.content
    expect(chat.get_by_role("button", name="Send")).to_be_visible()


def test_a_reload_mid_reply_reattaches_and_ends_with_exactly_the_stored_text(chat, settings):
    settings.CHAT_FAKE_TOKENS_PER_SECOND = 10
    settings.CHAT_FAKE_TOKENS = 40
    send(chat, "Hello")
    wait_for_words(last_reply(chat), 3)

    chat.reload()

    reply = last_reply(chat)
    expect(reply).to_have_attribute("data-status", "streaming")
    expect(reply).to_have_attribute("data-status", "complete", timeout=20_000)
    message = stored(reply)
    assert len(message.content.split()) == 40
    assert shown_text(reply) == message.content


def test_a_second_tab_sees_the_same_live_reply(chat, context, settings):
    settings.CHAT_FAKE_TOKENS_PER_SECOND = 10
    settings.CHAT_FAKE_TOKENS = 3
    send(chat, "echo hi")
    expect(last_reply(chat)).to_have_attribute("data-status", "complete")
    already_open = context.new_page()
    already_open.goto(chat.url)
    expect(last_reply(already_open)).to_have_attribute("data-status", "complete")

    # Long enough to outlast opening the tabs on a loaded machine; it is stopped below.
    settings.CHAT_FAKE_TOKENS = 600
    send(chat, "Hello")
    first = last_reply(chat)
    wait_for_words(first, 2)
    opened_now = context.new_page()
    opened_now.goto(chat.url)
    # The tab that was open all along catches up when it is looked at again.
    already_open.evaluate("() => document.dispatchEvent(new Event('visibilitychange'))")

    tabs = [chat, opened_now, already_open]
    for tab in tabs[1:]:
        expect(last_reply(tab)).to_have_attribute("data-status", "streaming")
    chat.get_by_role("button", name="Stop the reply").click()
    for tab in tabs:
        expect(last_reply(tab)).to_have_attribute("data-status", "stopped", timeout=20_000)
    content = stored(first).content
    assert [shown_text(last_reply(tab)) for tab in tabs] == [content] * 3


def test_model_output_cannot_run_and_shows_as_text(chat):
    payload = (
        'echo <img src=x onerror="window.pwned=1"> <script>window.pwned=2</script> '
        "[click](javascript:window.pwned=3)"
    )
    send(chat, payload)
    reply = last_reply(chat)
    expect(reply).to_have_attribute("data-status", "complete")

    body = reply.locator(".body")
    expect(body).to_contain_text('<img src=x onerror="window.pwned=1">')
    expect(body).to_contain_text("<script>window.pwned=2</script>")
    assert body.locator("img, script, [onerror], [href^='javascript' i]").count() == 0
    body.get_by_text("click", exact=True).click()
    assert chat.evaluate("window.pwned") is None


def test_the_page_has_a_strict_content_security_policy(chat):
    response = chat.goto("/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert chat.locator("script:not([src]), [style]").count() == 0


def test_markdown_renders_with_highlighted_code(chat):
    send(chat, "echo ## Plan\n\n1. **bold** step\n\n```python\ndef f():\n    return 1\n```\n")
    reply = last_reply(chat)
    expect(reply).to_have_attribute("data-status", "complete")
    expect(reply.get_by_role("heading", name="Plan")).to_be_visible()
    expect(reply.locator("ol strong")).to_have_text("bold")
    expect(reply.locator("pre code.language-python .hljs-keyword").first).to_have_text("def")
    expect(reply.get_by_role("button", name="Copy python code")).to_be_visible()


def test_a_failed_reply_shows_the_error_and_a_retry(chat):
    send(chat, "fail now")
    reply = last_reply(chat)
    expect(reply).to_have_attribute("data-status", "failed")
    expect(reply.get_by_role("alert")).to_contain_text("The fake model failed")
    failed_id = reply.get_attribute("data-id")

    reply.get_by_role("button", name="Retry").click()

    retried = last_reply(chat)
    expect(retried).not_to_have_attribute("data-id", failed_id)
    expect(retried).to_have_attribute("data-status", "failed")
    expect(chat.locator(".message")).to_have_count(2)
    assert Message.objects.filter(role="user").count() == 1


def test_it_regenerates_the_last_reply_and_resends_an_edited_question(chat):
    """Both keep the old version: tests/browser/test_branches.py pages through them."""
    send(chat, "echo one")
    reply = last_reply(chat)
    expect(reply).to_have_attribute("data-status", "complete")
    first_id = reply.get_attribute("data-id")

    reply.get_by_role("button", name="Regenerate reply").click()
    expect(last_reply(chat)).not_to_have_attribute("data-id", first_id)
    expect(last_reply(chat)).to_have_attribute("data-status", "complete")

    chat.locator(".message.user").last.hover()
    chat.get_by_role("button", name="Edit message").click()
    editor = chat.get_by_label("Edit your message")
    editor.fill("echo two")
    editor.press("Enter")

    expect(last_reply(chat).locator(".body")).to_have_text("two")
    expect(last_reply(chat)).to_have_attribute("data-status", "complete")
    expect(chat.locator(".message")).to_have_count(2)
    contents = list(Message.objects.order_by("id").values_list("content", flat=True))
    assert contents == ["echo one", "one", "one", "echo two", "two"]


def test_it_needs_a_log_in(page):
    page.goto("/c/1/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/c/1/$"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_it_switches_renames_and_deletes_conversations(chat):
    for text in ("echo apples", "echo pears"):
        chat.get_by_role("button", name="New chat").click()
        send(chat, text)
        expect(last_reply(chat)).to_have_attribute("data-status", "complete")
    sidebar = chat.locator("#conversations a")
    # Newest first, each titled by the (fake) model after its first reply.
    expect(sidebar).to_have_text(["pears", "apples"])

    sidebar.get_by_text("apples").click()
    expect(chat.locator(".message.assistant .body")).to_have_text(["apples"])
    apples = Conversation.objects.get(title="apples")
    expect(chat).to_have_url(re.compile(rf"/c/{apples.pk}/$"))

    chat.get_by_role("button", name="Rename “apples”").click()
    chat.get_by_label("New title").fill("Fruit")
    chat.get_by_label("New title").press("Enter")
    # Where it then sits depends on whether the list was fetched again since: either way.
    expect(sidebar.get_by_text("Fruit", exact=True)).to_be_visible()
    expect(sidebar).to_have_count(2)
    expect(chat.get_by_role("heading", level=1)).to_have_text("Fruit")
    eventually(lambda: Conversation.objects.get(pk=apples.pk).title == "Fruit")

    chat.get_by_role("button", name="Delete “Fruit”").click()
    chat.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(sidebar).to_have_text(["pears"])
    expect(chat).to_have_url(re.compile(r"/$"))
    assert not Conversation.objects.filter(pk=apples.pk).exists()


def test_the_search_box_filters_conversations(chat):
    for text in ("echo otters swim", "echo cats nap"):
        chat.get_by_role("button", name="New chat").click()
        send(chat, text)
        expect(last_reply(chat)).to_have_attribute("data-status", "complete")
    chat.get_by_label("Search conversations").fill("otter")
    # The first-line title, or the (fake) model's once it has written one.
    expect(chat.locator("#conversations a")).to_have_text([re.compile(r"^(echo )?otters swim$")])


def test_a_persona_preset_sets_the_system_prompt(chat):
    chat.get_by_role("button", name=re.compile("Persona")).click()
    dialog = chat.get_by_role("dialog")
    dialog.get_by_label("Preset").select_option(label="Pirate captain")
    expect(dialog.get_by_label("System prompt")).to_have_value(re.compile("pirate"))
    dialog.get_by_role("button", name="Save persona").click()
    expect(chat.locator("#persona-name")).to_have_text("Pirate captain")

    send(chat, "echo ahoy")
    expect(last_reply(chat)).to_have_attribute("data-status", "complete")
    conversation = Conversation.objects.get()
    assert "pirate captain" in conversation.system_prompt
    assert conversation.model == "fake"


def test_the_model_picker_offers_the_servers_models(chat, settings):
    settings.OPENAI_MODELS = ["remote-model"]
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"  # never called: no message is sent to it
    providers.reset()
    chat.reload()
    wait_until_ready(chat)
    picker = chat.get_by_label("Model")
    expect(picker.locator("option")).to_have_text(["remote-model", "fake"])
    expect(picker).to_have_value("fake")  # the server's default
    send(chat, "echo hi")
    expect(last_reply(chat)).to_have_attribute("data-status", "complete")

    picker.select_option("remote-model")

    eventually(lambda: Conversation.objects.get().model == "remote-model")


def test_it_follows_the_reply_until_the_reader_scrolls_up(chat, settings):
    settings.CHAT_FAKE_TOKENS_PER_SECOND = 40
    settings.CHAT_FAKE_TOKENS = 400
    chat.set_viewport_size({"width": 800, "height": 500})
    send(chat, "Hello")
    reply = last_reply(chat)
    thread = "document.getElementById('thread')"
    at_bottom = f"(t => t.scrollHeight - t.scrollTop - t.clientHeight < 48)({thread})"
    chat.wait_for_function(f"() => {thread}.scrollTop > 200 && {at_bottom}", polling=100)
    chat.locator("#thread").hover()
    chat.mouse.wheel(0, -150)
    chat.wait_for_function(f"() => !{at_bottom}")
    held = chat.evaluate(f"{thread}.scrollTop")
    wait_for_words(reply, 120)
    assert chat.evaluate(f"{thread}.scrollTop") == held
    expect(chat.get_by_role("button", name="Latest")).to_be_visible()
    chat.get_by_role("button", name="Stop the reply").click()
    expect(reply).to_have_attribute("data-status", "stopped")


def test_it_is_usable_375_pixels_wide(chat):
    chat.set_viewport_size({"width": 375, "height": 740})
    send(chat, "echo " + "a fairly long line of words " * 8)
    expect(last_reply(chat)).to_have_attribute("data-status", "complete")
    assert chat.evaluate("document.documentElement.scrollWidth") <= 375
    expect(chat.get_by_label("Message", exact=True)).to_be_visible()
    expect(chat.get_by_role("button", name="New chat")).to_be_hidden()

    chat.get_by_role("button", name="Show conversations").click()
    expect(chat.get_by_role("button", name="New chat")).to_be_visible()
    expect(chat.get_by_label("Search conversations")).to_be_focused()
    chat.keyboard.press("Escape")
    expect(chat.get_by_role("button", name="New chat")).to_be_hidden()


# The controls on screen that neither a label, an aria-label nor their own text names.
UNNAMED_CONTROLS = """() => [
  ...document.querySelectorAll("button, input, select, textarea, a[href]")]
  .filter((el) => el.type !== "hidden" && el.checkVisibility())
  .filter((el) => !(el.getAttribute("aria-label") || el.labels?.length || el.textContent.trim()))
  .map((el) => el.outerHTML.slice(0, 80))"""


def test_every_control_has_a_name_and_the_keyboard_reaches_it(chat):
    send(chat, "echo ```js\nlet x = 1\n```")
    expect(last_reply(chat)).to_have_attribute("data-status", "complete")
    chat.locator(".message.user").last.hover()
    assert chat.evaluate(UNNAMED_CONTROLS) == []

    chat.get_by_label("Message", exact=True).press("Tab")
    expect(chat.get_by_role("button", name="Send")).to_be_focused()
    chat.get_by_label("Search conversations").focus()
    chat.keyboard.press("Tab")
    expect(chat.locator("#conversations a").first).to_be_focused()
    chat.keyboard.press("Tab")
    expect(chat.get_by_role("button", name=re.compile("^Rename"))).to_be_focused()
