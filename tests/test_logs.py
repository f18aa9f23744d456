"""Logs: LOG_FORMAT=json gives one JSON object a line, with request, user and message ids;
each reply's end is logged once; the default stays readable text."""

from __future__ import annotations

import json
import logging
import sys
import time

import httpx
import pytest

from chat.logs import ContextFilter, JsonFormatter, bind, open_context
from chat.models import ApiKey
from tests.conftest import wait_for_status
from tests.processes import Process, environment, start_web
from tests.sse import EventStream

pytestmark = pytest.mark.django_db(transaction=True)


def json_lines(process: Process) -> list[dict]:
    """Every line of the process's output, each parsed as JSON (failing on any that is not)."""
    lines = [line for line in process.output().splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}")
    return parsed


def reply_ends(records: list[dict], message_id: int) -> list[dict]:
    return [
        r
        for r in records
        if r.get("logger") == "chat.replies" and r.get("message_id") == message_id
    ]


def wait_for(check, timeout: float = 15):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "the log never said it"
        time.sleep(0.05)
    return result


@pytest.fixture
def web(request, alice, tmp_path):
    """A web process with LOG_FORMAT as the test's parameter; an API client of alice's."""
    env = environment(
        "", LOG_FORMAT=request.param, CHAT_LOCAL_ENABLED="false", CHAT_DEFAULT_MODEL="fake"
    )
    process, url = start_web(env, tmp_path, f"web-{request.param}")
    _key, raw = ApiKey.issue(alice)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {raw}"}, timeout=30) as api:
        yield process, api
    process.stop()


def reply(api: httpx.Client, content: str, request_id: str | None = None) -> tuple[int, str]:
    """Send `content` in a new conversation; the reply's message id and its last event."""
    chat = api.post("/api/conversations", json={"model": "fake"}).json()
    headers = {"X-Request-ID": request_id} if request_id else {}
    request = api.build_request(
        "POST",
        f"/api/conversations/{chat['id']}/messages",
        json={"content": content},
        headers=headers,
    )
    with EventStream(api.send(request, stream=True)) as stream:
        start = next(stream)
        events = stream.all()
    wait_for_status(start.data["message_id"])
    return start.data["message_id"], events[-1].event


@pytest.mark.parametrize("web", ["json"], indirect=True)
def test_it_writes_one_json_object_a_line_with_the_ids(web, alice):
    process, api = web
    mid, last = reply(api, "Tell me something.", request_id="trace-abc.123")
    assert last == "done"
    ends = wait_for(lambda: reply_ends(json_lines(process), mid))
    [end] = ends
    assert end["request_id"] == "trace-abc.123"
    assert end["user_id"] == alice.pk
    assert end["model"] == "fake"
    assert end["status"] == "complete"
    assert end["output_tokens"] == 40
    assert isinstance(end["ttft_ms"], int) and isinstance(end["duration_ms"], int)
    assert end["duration_ms"] >= end["ttft_ms"]
    assert end["level"] == "info" and end["time"].endswith("+00:00")

    records = json_lines(process)
    [posted] = [
        r for r in records if r.get("logger") == "chat.requests" and r.get("method") == "POST"
        and r["path"].endswith("/messages")
    ]  # fmt: skip
    assert posted["request_id"] == "trace-abc.123"
    assert posted["user_id"] == alice.pk
    assert posted["status"] == 200
    assert all("request_id" in r for r in records if r.get("logger") == "chat.requests")


@pytest.mark.parametrize("web", ["json"], indirect=True)
def test_it_logs_each_reply_end_once_whatever_the_end(web):
    process, api = web
    failed, last = reply(api, "fail now")
    assert last == "error"
    complete, _ = reply(api, "echo hello there")
    records = wait_for(lambda: (r := json_lines(process)) and reply_ends(r, complete) and r)
    assert [e["status"] for e in reply_ends(records, failed)] == ["failed"]
    assert reply_ends(records, failed)[0]["error_code"]
    assert [e["status"] for e in reply_ends(records, complete)] == ["complete"]


@pytest.mark.parametrize("web", ["json"], indirect=True)
def test_it_gives_each_request_an_id_and_replaces_a_bad_one(web):
    _process, api = web
    assert (
        api.get("/api/models", headers={"X-Request-ID": "abc-1"}).headers["X-Request-ID"] == "abc-1"
    )
    for bad in ["x" * 65, "a b", "<script>"]:
        given = api.get("/api/models", headers={"X-Request-ID": bad}).headers["X-Request-ID"]
        assert given != bad and len(given) == 32
    first = api.get("/api/models").headers["X-Request-ID"]
    assert first != api.get("/api/models").headers["X-Request-ID"]


@pytest.mark.parametrize("web", ["text"], indirect=True)
def test_the_default_stays_readable_text(web, alice):
    process, api = web
    mid, _ = reply(api, "Tell me something.")
    line = wait_for(
        lambda: next(
            (x for x in process.output().splitlines() if f"reply {mid} complete" in x), None
        )
    )
    assert "model=fake" in line and "tokens=40" in line
    assert f"user_id={alice.pk}" in line and f"message_id={mid}" in line
    assert not line.lstrip().startswith("{")


def test_a_bad_log_format_stops_the_start(tmp_path):
    env = environment("", LOG_FORMAT="xml")
    process = Process("bad-format", [sys.executable, "manage.py", "check"], env, tmp_path)
    assert process.popen.wait(60) != 0
    assert "LOG_FORMAT must be text or json" in process.output()


def test_the_formatter_keeps_exceptions_and_odd_values_as_json():
    open_context("req-1")
    bind(user_id=7)
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("chat.test").makeRecord(
            "chat.test", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info(),
            extra={"when": object(), "count": 3},
        )  # fmt: skip
    ContextFilter().filter(record)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "failed here"
    assert (entry["request_id"], entry["user_id"], entry["count"]) == ("req-1", 7, 3)
    assert "ValueError: boom" in entry["exception"]
    assert entry["when"].startswith("<object")
