"""A server loads its default model as it starts; a reply sent meanwhile waits for it."""

import httpx
import pytest
from django.conf import settings

from chat import providers
from chat.models import ApiKey, Message
from tests import processes
from tests.sse import EventStream

MODEL = "smollm2-135m"
LOADING = "Loading the default model"
READY = f"The default model {MODEL} is ready"


def client_for(url: str, user) -> httpx.Client:
    _key, raw = ApiKey.issue(user)
    # Generous: a reply sent while the model loads waits for it (keepalives come meanwhile).
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {raw}"}, timeout=120)


def send(client: httpx.Client, content: str) -> list:
    """Start a conversation on the local model, send `content`, read the reply to its end."""
    conversation = client.post("/api/conversations", json={"model": MODEL}).json()
    path = f"/api/conversations/{conversation['id']}/messages"
    request = client.build_request("POST", path, json={"content": content})
    with EventStream(client.send(request, stream=True)) as stream:
        return stream.all()


@pytest.fixture
def server(transactional_db, tmp_path):
    """A server whose model has its fast-loading copy already (the project's cache)."""
    web, url = processes.launch_local_web(tmp_path, settings.CHAT_MODEL_CACHE_DIR, MODEL)
    yield web, url
    web.stop()


@pytest.fixture
def slow_server(transactional_db, tmp_path):
    """A server on an empty model cache: converting the GGUF file takes 15 s or more."""
    web, url = processes.launch_local_web(tmp_path, tmp_path / "models", MODEL)
    yield web, url
    web.stop()


@pytest.mark.model
def test_it_loads_the_model_without_any_request(server, alice):
    web, url = server

    web.wait_for_output(READY, timeout=180)  # nobody has asked it anything yet
    processes.wait_for_web(web, url)
    with client_for(url, alice) as client:
        events = send(client, "Say hello.")

    start, done = events[0], events[-1]
    assert start.event == "start" and "loading_model" not in start.data
    assert done.event == "done" and done.data["status"] == "complete"
    assert web.output().count("Loaded local model") == 1


@pytest.mark.model
def test_a_message_sent_while_the_model_loads_waits_and_gets_its_reply(slow_server, alice):
    web, url = slow_server

    web.wait_for_output(LOADING, timeout=120)  # no request needed
    processes.wait_for_web(web, url)
    assert READY not in web.output()
    with client_for(url, alice) as client:
        events = send(client, "Say hello.")

    start, done = events[0], events[-1]
    assert start.event == "start" and start.data["loading_model"] is True
    assert done.event == "done" and done.data["status"] == "complete"
    text = "".join(e.data["text"] for e in events if e.event == "delta")
    assert text and Message.objects.get(pk=start.data["message_id"]).content == text
    assert web.output().count("Loaded local model") == 1  # the reply waited for the same load


def test_it_loads_nothing_when_preload_is_off(settings):
    settings.CHAT_LOCAL_PRELOAD = False
    settings.CHAT_DEFAULT_MODEL = MODEL
    providers.reset()

    assert providers.preload_default() is None
