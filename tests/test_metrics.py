"""GET /metrics: guarded by CHAT_METRICS_TOKEN, moved by real replies, summed across processes."""

from __future__ import annotations

import json
import signal
import sys
import time

import httpx
import pytest
from django.urls import resolve
from prometheus_client.parser import text_string_to_metric_families

from chat.models import ApiKey
from tests.conftest import send, wait_for_status
from tests.processes import (
    WORKER_CHANNEL,
    Process,
    environment,
    free_port,
    start_web,
)

TOKEN = "scrape-me-0123456789"
LOCAL = "smollm2-135m"
STORY = "Write a long story about a lighthouse keeper and the sea."


@pytest.fixture
def metrics_on(settings):
    settings.CHAT_METRICS_TOKEN = TOKEN
    return settings


def scrape(base_url: str, token: str = TOKEN) -> dict:
    """The samples of /metrics as {(name, ((label, value), ...)): value}."""
    response = httpx.get(
        f"{base_url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def eventually(check, timeout: float = 15, message: str = "the condition never held"):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, message
        time.sleep(0.05)
    return result


def test_it_is_not_there_without_a_token_configured(api, settings):
    settings.CHAT_METRICS_TOKEN = ""
    assert httpx.get(f"{api.base_url}/metrics").status_code == 404
    assert (
        httpx.get(f"{api.base_url}/metrics", headers={"Authorization": "Bearer x"}).status_code
        == 404
    )


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer wrong-token",
        f"Basic {TOKEN}",
        f"Bearer {TOKEN}x",
        "Bearer ünïcode".encode(),
        f"{TOKEN}",
    ],
)
def test_it_refuses_a_scraper_without_the_token(api, metrics_on, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.get(f"{api.base_url}/metrics", headers=headers)
    assert response.status_code == 401
    assert "chat_replies" not in response.text


def test_it_answers_a_scraper_at_its_address_whatever_the_host_name(api, metrics_on):
    # Prometheus reaches each container by IP, which no ALLOWED_HOSTS lists.
    auth = {"Authorization": f"Bearer {TOKEN}", "Host": "172.18.0.7:8000"}
    response = httpx.get(f"{api.base_url}/metrics", headers=auth)
    assert response.status_code == 200 and "chat_replies_started_total" in response.text
    assert httpx.get(f"{api.base_url}/api/models", headers=auth).status_code == 400
    assert httpx.post(f"{api.base_url}/metrics", headers=auth).status_code == 405


def test_it_refuses_a_users_own_api_key(api, metrics_on):
    # `api` is alice's client: her valid key is no metrics token.
    assert api.get("/metrics").status_code == 401


def test_it_counts_a_real_reply_from_start_to_end(api, conversation, metrics_on):
    metrics_on.CHAT_FAKE_TOKENS_PER_SECOND = 20
    before = scrape(api.base_url)
    with send(api, conversation["id"], "Tell me something.") as stream:
        start = next(stream)
        during = scrape(api.base_url)
        events = stream.all()
    assert events[-1].event == "done"
    wait_for_status(start.data["message_id"])
    after = eventually(
        lambda: (
            (s := scrape(api.base_url))
            and value(s, "chat_replies_finished_total", model="fake", status="complete")
            > value(before, "chat_replies_finished_total", model="fake", status="complete")
            and s
        )
    )

    assert value(during, "chat_streams_open") >= value(before, "chat_streams_open") + 1
    assert value(during, "chat_replies_in_progress") >= 1
    for name, labels, grew_by in [
        ("chat_replies_started_total", {"model": "fake"}, 1),
        ("chat_replies_finished_total", {"model": "fake", "status": "complete"}, 1),
        ("chat_reply_output_tokens_total", {"model": "fake"}, 40),
        ("chat_reply_ttft_seconds_count", {"model": "fake"}, 1),
        ("chat_reply_duration_seconds_count", {"model": "fake"}, 1),
    ]:
        assert value(after, name, **labels) - value(before, name, **labels) == grew_by, name
    assert value(after, "chat_reply_ttft_seconds_sum", model="fake") > value(
        before, "chat_reply_ttft_seconds_sum", model="fake"
    )
    assert value(after, "chat_streams_open") == value(before, "chat_streams_open")
    assert value(after, "chat_replies_in_progress") == value(before, "chat_replies_in_progress")
    route = resolve(f"/api/conversations/{conversation['id']}/messages").route
    sent = {"method": "POST", "route": route, "status": "200"}
    assert value(after, "chat_http_requests_total", **sent) >= 1


def test_it_counts_a_failed_reply_as_failed(api, conversation, metrics_on):
    labels = {"model": "fake", "status": "failed"}
    before = value(scrape(api.base_url), "chat_replies_finished_total", **labels)
    with send(api, conversation["id"], "fail now") as stream:
        assert stream.all()[-1].event == "error"
    eventually(
        lambda: value(scrape(api.base_url), "chat_replies_finished_total", **labels) == before + 1
    )


def test_it_lists_the_limit_refusal_codes_from_zero(api, metrics_on):
    samples = scrape(api.base_url)
    for code in ("too_many_replies", "rate_limited", "quota_exceeded"):
        assert ("chat_limit_refusals_total", (("code", code),)) in samples


def test_it_counts_a_real_limit_refusal_by_its_code(api, conversation, metrics_on):
    metrics_on.CHAT_USER_REPLIES_PER_MINUTE = 1
    before = value(scrape(api.base_url), "chat_limit_refusals_total", code="rate_limited")
    with send(api, conversation["id"], "Tell me something.") as stream:
        assert stream.all()[-1].event == "done"
    refused = api.post(
        f"/api/conversations/{conversation['id']}/messages", json={"content": "And again."}
    )
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    after = value(scrape(api.base_url), "chat_limit_refusals_total", code="rate_limited")
    assert after == before + 1


def test_it_counts_nothing_while_nobody_may_scrape(api, conversation, metrics_on):
    before = value(scrape(api.base_url), "chat_replies_started_total", model="fake")
    metrics_on.CHAT_METRICS_TOKEN = ""
    with send(api, conversation["id"], "Tell me something.") as stream:
        assert stream.all()[-1].event == "done"
    metrics_on.CHAT_METRICS_TOKEN = TOKEN
    assert value(scrape(api.base_url), "chat_replies_started_total", model="fake") == before


@pytest.fixture
def two_processes(transactional_db, alice, tmp_path):
    """Two web processes sharing one PROMETHEUS_MULTIPROC_DIR, as uvicorn's workers do."""
    shared = tmp_path / "metrics"
    shared.mkdir()
    env = environment(
        "",
        CHAT_METRICS_TOKEN=TOKEN,
        PROMETHEUS_MULTIPROC_DIR=shared,
        CHAT_DEFAULT_MODEL="fake",
        CHAT_LOCAL_ENABLED="false",
        CHAT_FAKE_TOKENS_PER_SECOND=20,
    )
    a, url_a = start_web(env, tmp_path, "web-a")
    b, url_b = start_web(env, tmp_path, "web-b")
    _key, raw = ApiKey.issue(alice)
    yield (a, url_a), (b, url_b), {"Authorization": f"Bearer {raw}"}
    for process in (a, b):
        process.stop()


def test_processes_sharing_a_folder_report_their_sum(two_processes):
    (a, url_a), (_b, url_b), auth = two_processes
    with httpx.Client(base_url=url_a, headers=auth, timeout=30) as api:
        chat = api.post("/api/conversations", json={"model": "fake"}).json()
        for _ in range(2):
            with send(api, chat["id"], "Tell me something.") as stream:
                assert stream.all()[-1].event == "done"
        with send(api, chat["id"], "Tell me more.") as stream:
            next(stream)  # still streaming: a's listener is open while b is asked
            from_b = scrape(url_b)
            assert value(from_b, "chat_streams_open") == 1
            assert value(from_b, "chat_replies_in_progress") == 1
            # a dies mid-reply: its live gauges go with it, its counters stay.
            a.popen.send_signal(signal.SIGKILL)
            a.popen.wait(10)
    after = scrape(url_b)
    assert value(after, "chat_replies_started_total", model="fake") == 3
    assert value(after, "chat_replies_finished_total", model="fake", status="complete") == 2
    assert value(after, "chat_reply_output_tokens_total", model="fake") == 80
    assert value(after, "chat_streams_open") == 0
    assert value(after, "chat_replies_in_progress") == 0


def test_a_process_without_the_folder_reports_only_itself(two_processes, tmp_path):
    # The control for the test above: the sum comes from the shared folder, not luck.
    (_a, url_a), _b, auth = two_processes
    env = environment("", CHAT_METRICS_TOKEN=TOKEN, CHAT_LOCAL_ENABLED="false")
    alone, url = start_web(env, tmp_path, "web-alone")
    try:
        with httpx.Client(base_url=url_a, headers=auth, timeout=30) as api:
            chat = api.post("/api/conversations", json={"model": "fake"}).json()
            with send(api, chat["id"], "Tell me something.") as stream:
                assert stream.all()[-1].event == "done"
        assert value(scrape(url_a), "chat_replies_started_total", model="fake") == 1
        assert value(scrape(url), "chat_replies_started_total", model="fake") == 0
    finally:
        alone.stop()


def test_a_worker_metrics_port_needs_a_number(tmp_path):
    env = environment("", CHAT_WORKER_METRICS_PORT="nine")
    process = Process("bad-port", [sys.executable, "manage.py", "check"], env, tmp_path)
    assert process.popen.wait(60) != 0
    assert "CHAT_WORKER_METRICS_PORT must be a number" in process.output()


def worker_samples(port: int) -> dict:
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert response.status_code == 200
    families = text_string_to_metric_families(response.text)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


@pytest.mark.model
def test_a_worker_reports_its_slots_queue_and_tokens(redis_url, alice, tmp_path, transactional_db):
    port = free_port()
    env = environment(
        redis_url,
        CHAT_WORKER_METRICS_PORT=port,
        CHAT_LOCAL_MAX_CONCURRENCY=1,
        CHAT_WORKER_QUEUE_TIMEOUT_SECONDS=120,
        CHAT_WORKER_CHANNEL=f"{WORKER_CHANNEL}-metrics",
    )
    worker = Process("worker", [sys.executable, "manage.py", "generation_worker"], env, tmp_path)
    worker.wait_for_output(
        "generation worker ready", timeout=240
    )  # torch loads slowly on a busy machine
    web, url = start_web(env, tmp_path, "web")
    _key, raw = ApiKey.issue(alice)
    try:
        idle = worker_samples(port)
        assert value(idle, "chat_worker_slots") == 1
        assert value(idle, "chat_worker_slots_busy") == 0
        auth = {"Authorization": f"Bearer {raw}"}
        short = {"model": LOCAL, "max_tokens": 5, "stream": True,
                 "messages": [{"role": "user", "content": "Say hello."}]}  # fmt: skip
        with httpx.Client(base_url=url, headers=auth, timeout=120) as api:
            chat = api.post("/api/conversations", json={"model": LOCAL}).json()
            with send(api, chat["id"], STORY) as first:
                long_id = next(first).data["message_id"]
                next(first)  # a delta: the worker's one slot is taken
                with api.stream("POST", "/v1/chat/completions", json=short) as second:
                    # One slot: the second request waits in the queue until the first ends.
                    busy = eventually(
                        lambda: (
                            (s := worker_samples(port))["chat_worker_queue_depth", ()] == 1 and s
                        )
                    )
                    assert value(busy, "chat_worker_slots_busy") == 1
                    assert api.post(f"/api/messages/{long_id}/stop").status_code == 202
                    chunks = [line for line in second.iter_lines() if line.startswith("data: ")]
                assert chunks[-1] == "data: [DONE]"
                assert first.all()[-1].data["status"] == "stopped"
        short_id = int(json.loads(chunks[0][6:])["id"].removeprefix("chatcmpl-"))
        stored = [wait_for_status(mid, timeout=60) for mid in (long_id, short_id)]
        assert [m.status for m in stored] == ["stopped", "complete"]
        done = eventually(
            lambda: (
                value(s := worker_samples(port), "chat_worker_requests_total", status="complete")
                # The queue's gauge is sampled now and then: wait for the sample after the end.
                and value(s, "chat_worker_queue_depth") == 0
                and s
            )
        )
        assert value(done, "chat_worker_requests_total", status="cancelled") == 1
        # Every token stored was generated; a stop may leave a few generated but unsent.
        generated = value(done, "chat_worker_output_tokens_total")
        assert sum(m.output_tokens for m in stored) <= generated <= 512 + 5
        assert value(done, "chat_worker_slots_busy") == 0
        assert value(done, "chat_worker_queue_depth") == 0
        assert value(done, "chat_worker_tokens_per_second") > 0
        assert value(done, "process_resident_memory_bytes") > 0
    finally:
        web.stop()
        worker.stop()
