"""The chat page while its server still loads the model: the reply says so, then comes."""

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import expect

from chat.models import Message
from tests import processes
from tests.browser.conftest import TIMEOUT_MS, PageProblems, wait_until_ready
from tests.test_preload import LOADING, MODEL

pytestmark = [pytest.mark.browser, pytest.mark.model]
NOTE = "Loading the model…"


@pytest.fixture
def slow_server(transactional_db, tmp_path):
    """A fresh server on an empty model cache: converting the GGUF file takes 15 s or more."""
    web, url = processes.launch_local_web(tmp_path, tmp_path / "models", MODEL)
    yield web, url
    web.stop()


@pytest.fixture
def page(browser, slow_server, alice):
    """alice's chat page on the slow server, signed in with a session made here."""
    web, url = slow_server
    client = Client()
    client.force_login(alice)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    context = browser.new_context(base_url=url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": url}])
    problems = PageProblems()
    context.on("page", problems.watch)
    yield context.new_page()
    context.close()
    assert not problems.errors, problems.errors


def test_a_reply_says_the_model_is_loading_until_its_text_comes(page, slow_server):
    web, url = slow_server
    web.wait_for_output(LOADING, timeout=120)
    processes.wait_for_web(web, url)
    page.goto("/")
    wait_until_ready(page)

    box = page.get_by_label("Message", exact=True)
    box.fill("Say hello.")
    box.press("Enter")
    reply = page.locator(".message.assistant").last

    expect(reply.get_by_text(NOTE)).to_be_visible()
    expect(reply).to_have_attribute("data-status", "complete", timeout=180_000)
    expect(reply.get_by_text(NOTE)).to_be_hidden()
    stored = Message.objects.get(pk=int(reply.get_attribute("data-id")))
    assert stored.status == Message.Status.COMPLETE and stored.content.strip()
    assert reply.locator(".body").text_content().strip()
