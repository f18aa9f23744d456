"""Headless Chromium, driven by Playwright, against the live server on the fake model.

The browser is Debian's `chromium` package (scripts/test.sh installs it when it can);
Playwright's own browser downloads are never used. A failing test leaves a screenshot
of each of its pages in test-artifacts/.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "correct horse battery"  # alice's, from tests/conftest.py
# Conditions, not sleeps; but a shared two-core machine can be slow to meet them.
TIMEOUT_MS = 15_000
expect.set_options(timeout=TIMEOUT_MS)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so fixtures can tell a failed test."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture(scope="package")
def browser(live_server_url):
    """One Chromium for the browser tests; gone before any other test runs.

    Playwright's sync API keeps its event loop marked as running in this thread while
    it is started, so it must not outlive this package (async tests would find a loop
    already running), and it starts after the test database exists.
    """
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is missing: install Debian's chromium (scripts/test.sh does, as root)"
        )
    with sync_playwright() as playwright:
        # Playwright gives each launch a fresh temporary profile.
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class PageProblems:
    """What a page did that it never should: uncaught errors, CSP refusals, dialogs."""

    def __init__(self):
        self.errors: list[str] = []
        self.dialogs: list[str] = []

    def watch(self, page):
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        page.on("console", self._console)
        page.on("dialog", self._dialog)

    def _console(self, message):
        if message.type == "error" and "Content Security Policy" in message.text:
            self.errors.append(f"CSP: {message.text}")

    def _dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()


@pytest.fixture(autouse=True)
def _browser_settings(settings):
    """The page on the fake model alone, and quick to sign in to.

    Every test signs in through the form, where a real password hash costs a second or
    two; and offering the local model would import torch on the first /api/models.
    """
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.CHAT_LOCAL_ENABLED = False


@pytest.fixture(autouse=True)
def _orm_beside_playwright(monkeypatch):
    """Let the tests (and the database flush after each) use the ORM while Playwright runs.

    Django refuses ORM calls in a thread with a running event loop, and Playwright's sync
    API leaves its loop marked as running. The tests' own ORM calls are plain blocking
    reads, made between browser calls, so the check has nothing to protect here.
    """
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def context(transactional_db, live_server_url, browser, request):
    """A fresh browser profile on the live server; screenshots its pages if the test fails."""
    context = browser.new_context(base_url=live_server_url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    problems = PageProblems()
    context.on("page", problems.watch)
    context.problems = problems
    yield context
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^\w.-]+", "_", request.node.name)
        for index, page in enumerate(context.pages):
            page.screenshot(path=ARTIFACTS / f"{name}-{index}.png", full_page=True)
    context.close()
    assert not problems.dialogs, f"a page opened a dialog: {problems.dialogs}"
    assert not problems.errors, problems.errors


@pytest.fixture
def stranger(transactional_db, live_server_url, browser):
    """A second browser profile that has never signed in: no cookie, no session."""
    context = browser.new_context(base_url=live_server_url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    problems = PageProblems()
    context.on("page", problems.watch)
    yield context
    context.close()
    assert not problems.errors, problems.errors


@pytest.fixture
def page(context):
    return context.new_page()


@pytest.fixture
def chat(page, alice):
    """alice, signed in through the log-in form, on a new chat."""
    page.goto("/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/")
    wait_until_ready(page)
    return page


def wait_until_ready(page):
    """The page's script has loaded the models: the composer works from here on."""
    # Predicates are functions, not expressions: the page's CSP forbids eval().
    page.wait_for_function("() => document.querySelectorAll('#model option').length > 0")


def eventually(check, timeout: float = 10, message: str = "the condition never held"):
    """Poll `check()` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, message
        time.sleep(0.05)
    return result
