"""The OpenAPI document: it lists every operation, and the live server keeps to it.

schemathesis generates requests from the document (bodies, parameters, both ways of
signing in) and checks every answer: never a 5xx, always a documented status, media
type and shape.
"""

from __future__ import annotations

import secrets

import pytest
import schemathesis
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from chat.models import ApiKey
from chat.schema import document
from chat.schema.operations import OPERATIONS

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Enough to reach every operation's branches; the whole run stays around a minute.
EXAMPLES = 25


def _routes(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield "/" + prefix + str(pattern.pattern)


def _as_openapi(route: str) -> str:
    import re

    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)


def test_it_lists_every_api_and_v1_url():
    routes = {_as_openapi(r) for r in _routes(get_resolver().url_patterns)}
    served = {r for r in routes if r.startswith(("/api/", "/v1/"))}
    assert served == {operation.path for operation in OPERATIONS}


def test_it_serves_the_document_to_anyone(live_server_url, transactional_db):
    import httpx

    response = httpx.get(live_server_url + "/api/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    assert "/v1/chat/completions" in document["paths"]
    body = document["paths"]["/api/conversations/{conversation_id}/messages"]["post"]
    content = body["requestBody"]["content"]["application/json"]["schema"]
    assert content["properties"]["content"]["maxLength"] > 0


@schemathesis.serializer("application/zip")
def _zip_bytes(context, value) -> bytes:
    """Generated binary bodies go out as they are (schemathesis has no zip serializer)."""
    return value if isinstance(value, bytes) else str(value).encode()


# Built in-process (the same document the server publishes) so that tests can be made
# for each operation when the module is collected.
schema = schemathesis.openapi.from_dict(document())


@pytest.fixture
def doors(alice, settings):
    """How alice signs in: her API key, or a session cookie with its CSRF token.

    Each is a function of the path giving (headers, cookies); /v1/ takes keys only,
    so it gets the key either way. Replies are short, so streams end quickly.
    """
    settings.CHAT_FAKE_TOKENS = 3
    settings.CHAT_FAKE_TOKENS_PER_SECOND = 1000
    _key, raw = ApiKey.issue(alice)
    bearer = {"Authorization": f"Bearer {raw}"}
    browser = Client()
    browser.force_login(alice)
    csrf = secrets.token_hex(16)
    cookies = {"sessionid": browser.cookies["sessionid"].value, "csrftoken": csrf}

    def session(path):
        return (bearer, {}) if path.startswith("/v1/") else ({"X-CSRFToken": csrf}, cookies)

    return {"key": lambda path: (bearer, {}), "session": session}


@pytest.fixture
def alices_objects(alice):
    """A conversation of alice's with a finished reply, for the ids in paths to find."""
    from tests.conftest import make_conversation

    return make_conversation(
        alice, "Otters", [("user", "Hi", "complete"), ("assistant", "Hello", "complete")]
    )


def _aim_at_real_objects(case, alices_objects) -> None:
    """Half the generated ids point at alice's objects, so more than 404 is reached."""
    params = case.path_parameters or {}
    conversation = alices_objects
    if not type(conversation).objects.filter(pk=conversation.pk).exists():
        return
    for name, real in (
        ("conversation_id", conversation.pk),
        ("message_id", conversation.messages.last().pk),
    ):
        value = params.get(name)
        if isinstance(value, int) and value % 2 == 0:
            params[name] = real


def _avoid_failing_on_purpose(case) -> None:
    # The fake model fails a message starting with "fail" by design: a 500 on /v1.
    body = case.body if isinstance(case.body, dict) else {}
    messages = body.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
        content = messages[-1].get("content")
        if isinstance(content, str) and content.startswith("fail"):
            messages[-1]["content"] = "not " + content


def _call(case, door, alices_objects, base_url):
    _aim_at_real_objects(case, alices_objects)
    _avoid_failing_on_purpose(case)
    headers, cookies = door(case.path)
    case.call_and_validate(
        base_url=base_url, headers=headers, cookies=cookies, checks=CHECKS, timeout=30
    )


RUN = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


@schema.parametrize()
@RUN
def test_it_keeps_to_its_document_with_a_key(case, doors, alices_objects, live_server_url):
    _call(case, doors["key"], alices_objects, live_server_url)


@schema.parametrize()
@RUN
def test_it_keeps_to_its_document_with_a_session(case, doors, alices_objects, live_server_url):
    _call(case, doors["session"], alices_objects, live_server_url)
