"""Replies handed to a generation worker, over real Redis: the worker writes the log."""

import asyncio
import contextlib
import time
import uuid

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers, get_channel_layer

from chat.models import Conversation, Message
from chat.providers.base import Generation
from chat.providers.fake import FakeProvider
from chat.providers.remote import RemoteProvider
from chat.runs import ReplyIds, Run
from chat.runs.dispatch import generate_text
from chat.runs.eventlog.redis import RedisEventLog
from chat.runs.registry import RunRegistry
from chat.worker import GenerationWorker

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def layer(settings, redis_url):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": redis_url, "socket_timeout": 30}]},
        }
    }
    settings.CHAT_WORKER_QUEUE_TIMEOUT_SECONDS = 1
    # A queue of this test's own: no real worker (the suite may run one) listens to it,
    # and no job an earlier test left there is taken.
    settings.CHAT_WORKER_CHANNEL += f"-dispatch-{uuid.uuid4().hex}"
    channel_layers.backends.clear()
    yield get_channel_layer()
    channel_layers.backends.clear()


@pytest.fixture
async def web(layer, redis_url):
    """A web process's registry: it hands local replies to workers."""
    registry = RunRegistry(RedisEventLog(redis_url))
    yield registry
    if registry._services:
        registry._services.cancel()


class CountingProvider(FakeProvider):
    generated = 0

    def stream(self, generation):
        self.generated += 1
        return super().stream(generation)


@pytest.fixture
async def worker(layer, redis_url):
    """A worker, in this process, that serves one job when asked to."""
    serving = GenerationWorker(CountingProvider())
    serving.registry = RunRegistry(RedisEventLog(redis_url))
    serving.log = serving.registry.log
    yield serving
    if serving.registry._services:
        serving.registry._services.cancel()


async def take_one(worker: GenerationWorker, layer, settings) -> str:
    job = await layer.receive(settings.CHAT_WORKER_CHANNEL)
    await worker.slots.acquire()
    worker._start(job)
    _generation, task = worker.active[job["key"]]
    return await task


@sync_to_async
def new_reply(user) -> tuple[ReplyIds, Generation]:
    conversation = Conversation.objects.create(owner=user, model="smollm2-135m")
    question = conversation.messages.create(role="user", content="Hello")
    reply = conversation.messages.create(
        role="assistant", status="streaming", model="smollm2-135m", parent=question
    )
    messages = [{"role": "user", "content": "Hello"}]
    return ReplyIds(reply.id, question.id, conversation.id), Generation("fake", messages)


@sync_to_async
def stored(message_id: int) -> Message:
    return Message.objects.get(pk=message_id)


async def read_all(events) -> list:
    async with contextlib.aclosing(events):
        return [event async for event in events if event is not None]


async def test_the_worker_writes_the_reply_and_a_follower_reads_it_whole(
    web, worker, layer, settings, alice
):
    ids, generation = await new_reply(alice)
    run = Run(ids, RemoteProvider(), generation, time.monotonic())
    await web.launch(run)
    following = await web.follow(ids.message_id, -1)
    assert await take_one(worker, layer, settings) == "complete"
    events = await read_all(following)
    assert [e.seq for e in events] == list(range(len(events)))
    assert (events[0].name, events[-1].name) == ("start", "done")
    await run.task  # the web side counts the reply as ended
    assert run.generation.output_tokens == settings.CHAT_FAKE_TOKENS
    message = await stored(ids.message_id)
    assert message.status == "complete"
    assert message.content == "".join(e.data["text"] for e in events if e.name == "delta")


async def test_a_reply_no_worker_takes_fails_and_says_why(web, alice):
    ids, generation = await new_reply(alice)
    run = Run(ids, RemoteProvider(), generation, time.monotonic())
    await web.launch(run)
    events = await read_all(await web.follow(ids.message_id, -1))
    assert events[-1].name == "error" and events[-1].data["code"] == "no_worker"
    assert "generation_worker" in events[-1].data["message"]
    message = await stored(ids.message_id)
    assert (message.status, message.error_code) == ("failed", "no_worker")


async def test_a_reply_stopped_before_any_worker_took_it_is_never_generated(
    web, worker, layer, settings, alice
):
    ids, generation = await new_reply(alice)
    run = Run(ids, RemoteProvider(), generation, time.monotonic())
    await web.launch(run)
    following = await web.follow(ids.message_id, -1)
    assert await web.stop(ids.message_id)
    events = await read_all(following)
    assert events[-1].data["status"] == "stopped"
    assert await take_one(worker, layer, settings) == "cancelled"  # a worker takes it late
    assert worker.provider.generated == 0
    assert (await stored(ids.message_id)).status == "stopped"


async def test_a_stop_reaches_the_worker_writing_the_reply(web, worker, layer, settings, alice):
    settings.CHAT_FAKE_TOKENS_PER_SECOND = 5
    ids, generation = await new_reply(alice)
    await web.launch(Run(ids, RemoteProvider(), generation, time.monotonic()))
    following = await web.follow(ids.message_id, -1)
    serving = asyncio.create_task(take_one(worker, layer, settings))
    async with contextlib.aclosing(following):
        async for event in following:
            if event is not None and event.name == "delta":
                assert await web.stop(ids.message_id)
                break
        rest = [event async for event in following if event is not None]
    assert rest[-1].data["status"] == "stopped"
    assert await serving == "cancelled"


async def test_a_text_nobody_stores_comes_from_a_worker_too(web, worker, layer, settings):
    settings.CHAT_FAKE_TOKENS = 5
    generation = Generation("fake", [{"role": "user", "content": "echo A title"}])
    serving = asyncio.create_task(take_one(worker, layer, settings))
    parts = [text async for text in generate_text(web.log, generation)]
    assert "".join(parts) == "A title"
    assert await serving == "complete"
