"""Large request bodies are parsed in a worker process (chat.parsing): they get the same
answers as small ones, parsed where they are read, and a dead worker is replaced."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from chat import parsing
from chat.errors import ChatError, Unavailable
from chat.models import Conversation
from chat.schema import bodies
from tests.processes import environment, process_tree, start_web

# Whitespace after a JSON text leaves it the same JSON, and makes it a large body.
PADDING = b" " * (parsing.INLINE_BYTES + 1)
THIRTY_THOUSAND = [{"role": "user", "content": "a"}] * 30_000

REFUSED = {
    "not JSON": b'{"model": "fake", "messages": [}',
    "nested too deep": b'{"model": "fake", "messages": ' + b"[" * 100 + b"]" * 100 + b"}",
    "not an object": b'[{"model": "fake"}]',
    "a NUL in a string": b'{"model": "fake\\u0000", "messages": []}',
    "no messages": b'{"model": "fake", "messages": []}',
    "an unknown role": b'{"model": "fake", "messages": [{"role": "robot", "content": "a"}]}',
    "30,000 messages": json.dumps({"model": "fake", "messages": THIRTY_THOUSAND}).encode(),
}


def outcome(parse, raw: bytes):
    """What parsing `raw` as a chat completion gives: the body, or the error's every field."""
    try:
        return parse(raw, bodies.chat_completion(), "invalid_value")
    except ChatError as error:
        return type(error), error.status, error.code, error.message, getattr(error, "param", None)


@pytest.mark.parametrize("raw", REFUSED.values(), ids=REFUSED.keys())
def test_it_refuses_a_large_body_as_it_refuses_a_small_one(raw):
    at_once = outcome(parsing.parse_body, raw)
    assert isinstance(at_once, tuple) and at_once[1] in (400, 413)
    assert outcome(parsing.parsed, raw + PADDING) == at_once


def test_it_returns_a_large_body_that_fits():
    body = {"model": "fake", "messages": [{"role": "user", "content": "é" * 20_000}] * 3}
    raw = json.dumps(body).encode() + PADDING
    assert outcome(parsing.parsed, raw) == body


def test_it_answers_a_large_chat_that_fits_over_http(api):
    messages = [{"role": ("user", "assistant")[i % 2], "content": "x" * 20_000} for i in range(5)]
    body = {"model": "fake", "messages": messages}
    assert len(json.dumps(body)) > parsing.INLINE_BYTES
    response = api.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"]
    assert Conversation.objects.get().messages.count() == len(messages) + 1


def test_it_refuses_a_large_message_body_over_http(api):
    conversation = api.post("/api/conversations", json={}).json()["id"]
    raw = json.dumps({"content": ""}).encode() + PADDING
    headers = {"Content-Type": "application/json"}
    response = api.post(f"/api/conversations/{conversation}/messages", content=raw, headers=headers)
    assert (response.status_code, response.json()["error"]["code"]) == (400, "empty_content")
    assert not Conversation.objects.get().messages.exists()


def test_it_parses_again_after_its_worker_dies():
    raw = b'{"a": 1}' + PADDING
    worker = parsing._worker().submit(os.getpid).result()
    os.kill(worker, signal.SIGKILL)
    answers = []
    deadline = time.monotonic() + 60
    while not answers or answers[-1] != {"a": 1}:
        assert time.monotonic() < deadline, f"no answer since the worker died: {answers}"
        try:
            answers.append(parsing.parsed(raw, None))
        except Unavailable as error:
            answers.append(error.status)
    assert set(answers[:-1]) <= {503}


@pytest.mark.django_db(transaction=True)
def test_its_worker_ends_with_the_web_process_that_started_it(tmp_path):
    web, _url = start_web(environment(""), tmp_path, "web")
    worker = wait_for_body_worker(web.popen.pid)
    web.kill()  # as uvicorn --workers replaces one that hangs, or a machine dies
    deadline = time.monotonic() + 30
    while Path(f"/proc/{worker}").exists():
        assert time.monotonic() < deadline, "the body-parsing worker outlived its web process"
        time.sleep(0.05)


def wait_for_body_worker(server: int) -> int:
    """The pid of the worker process a web server started for large bodies."""
    deadline = time.monotonic() + 30
    while True:
        for pid in process_tree(server)[1:]:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"spawn_main" in command and b"resource_tracker" not in command:
                return pid
        assert time.monotonic() < deadline, "the web process started no body-parsing worker"
        time.sleep(0.05)
