"""The web side of worker generation, over the real Redis channel layer."""

import asyncio
import contextlib

import pytest
from channels.layers import channel_layers, get_channel_layer

from chat.providers.base import Generation, ProviderError
from chat.providers.remote import RemoteProvider


@pytest.fixture
def redis_layer(settings, redis_url):
    url = redis_url
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": url, "socket_timeout": 30}]},
        }
    }
    settings.CHAT_WORKER_QUEUE_TIMEOUT_SECONDS = 2
    settings.REDIS_URL = url
    # A queue no real worker (the suite may run one) listens to.
    settings.CHAT_WORKER_CHANNEL += "-pretend"
    channel_layers.backends.clear()
    yield get_channel_layer()
    channel_layers.backends.clear()


async def pretend_worker(layer, script: list[dict], queue: str) -> None:
    """Take one request off the queue and answer with `script`, as a worker would."""
    request = await layer.receive(queue)
    for message in script:
        await layer.send(request["reply_channel"], message)


async def collect(generation: Generation) -> list[str]:
    async with contextlib.aclosing(RemoteProvider().stream(generation)) as deltas:
        return [text async for text in deltas]


def generation() -> Generation:
    return Generation("smollm2-135m", [{"role": "user", "content": "hi"}])


async def test_it_yields_a_workers_deltas_in_order(redis_layer, settings):
    script = [
        {"type": "accepted", "worker": "nobody"},
        {"type": "delta", "seq": 0, "text": "Hel", "output_tokens": 1},
        {"type": "delta", "seq": 1, "text": "lo", "output_tokens": 2},
        {"type": "end", "seq": 2, "output_tokens": 2, "prompt_tokens": 9},
    ]
    worker = asyncio.create_task(pretend_worker(redis_layer, script, settings.CHAT_WORKER_CHANNEL))
    gen = generation()
    assert await collect(gen) == ["Hel", "lo"]
    await worker
    assert (gen.output_tokens, gen.prompt_tokens) == (2, 9)


async def test_it_reports_a_gap_in_the_sequence_instead_of_hiding_it(redis_layer, settings):
    script = [
        {"type": "accepted", "worker": "nobody"},
        {"type": "delta", "seq": 0, "text": "Hel", "output_tokens": 1},
        {"type": "delta", "seq": 2, "text": "world", "output_tokens": 3},
    ]
    worker = asyncio.create_task(pretend_worker(redis_layer, script, settings.CHAT_WORKER_CHANNEL))
    with pytest.raises(ProviderError) as caught:
        await collect(generation())
    await worker
    assert caught.value.code == "stream_gap"
    assert "1" in caught.value.message


async def test_it_says_so_when_no_worker_takes_the_request(redis_layer, settings):
    settings.CHAT_WORKER_CHANNEL = settings.CHAT_WORKER_CHANNEL + "-nobody-listens"
    with pytest.raises(ProviderError) as caught:
        await collect(generation())
    assert caught.value.code == "no_worker"
    assert "generation_worker" in caught.value.message


async def test_a_request_given_up_before_any_worker_took_it_is_never_generated(
    redis_layer, settings
):
    # Given up on: stopped, or (here) not taken within the queue time-out. Both leave it
    # flagged as cancelled, so the worker that takes it later skips it.
    from chat.providers.fake import FakeProvider
    from chat.worker import GenerationWorker

    class CountingProvider(FakeProvider):
        generated = 0

        def stream(self, generation):
            self.generated += 1
            return super().stream(generation)

    with pytest.raises(ProviderError, match="No generation worker"):
        await collect(generation())
    request = await redis_layer.receive(settings.CHAT_WORKER_CHANNEL)  # a worker takes it late
    provider = CountingProvider()
    await GenerationWorker(provider)._serve(request)
    assert provider.generated == 0
