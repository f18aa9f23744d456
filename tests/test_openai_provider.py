"""The OpenAI-compatible provider against a real HTTP server speaking the OpenAI wire format."""

import asyncio
import contextlib
import json
import socket

import pytest

from chat.providers.base import ConfigurationError, Generation, ProviderError
from chat.providers.openai_compat import PLACEHOLDER_KEY, OpenAIProvider, SSEDecoder, read_chunk
from chat.providers.transport import AsyncioTransport
from tests.openai_upstream import OpenAIUpstream

MODEL = "test-model"


@pytest.fixture
def upstream():
    with OpenAIUpstream(models=[MODEL]) as server:
        yield server


@pytest.fixture
def provider(settings, upstream):
    settings.OPENAI_API_KEY = "sk-test-key"
    settings.OPENAI_BASE_URL = upstream.url
    settings.OPENAI_MODELS = [MODEL]
    settings.OPENAI_TIMEOUT_SECONDS = 5.0
    settings.OPENAI_CONTEXT_TOKENS = 4096
    return OpenAIProvider()


def generation(**overrides) -> Generation:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say hello to the world"},
    ]
    return Generation(**{"model": MODEL, "messages": messages, **overrides})


async def collect(provider: OpenAIProvider, gen: Generation) -> list[str]:
    async with contextlib.aclosing(provider.stream(gen)) as deltas:
        return [delta async for delta in deltas]


async def failure(provider: OpenAIProvider, gen: Generation | None = None) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await collect(provider, gen or generation())
    return caught.value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_it_streams_deltas_from_the_upstream(provider, upstream):
    upstream.tokens = ["Hel", "lo", "", " wor", "ld"]

    deltas = await collect(provider, generation())

    # The role-only first chunk and the empty delta are skipped.
    assert deltas == ["Hel", "lo", " wor", "ld"]
    assert upstream.completed.is_set()


async def test_it_reuses_the_connection_after_a_whole_stream(provider, upstream):
    await collect(provider, generation())
    await collect(provider, generation())

    first, second = upstream.requests
    assert first.client_port == second.client_port


async def test_it_lists_the_configured_models_and_context(provider):
    assert provider.name == "openai"
    assert provider.models() == [MODEL]
    assert provider.context_window(MODEL) == 4096


async def test_it_sends_the_messages_and_the_key(provider, upstream, settings):
    gen = generation()

    await collect(provider, gen)

    [request] = upstream.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test-key"
    assert request.body["model"] == MODEL
    assert request.body["messages"] == gen.messages
    assert request.body["stream"] is True
    assert request.body["stream_options"] == {"include_usage": True}
    # Unset options are left out, so that strict compatible servers accept the request;
    # the length always has a cap, the site's.
    assert not {"temperature", "stop"} & request.body.keys()
    assert request.body["max_tokens"] == settings.CHAT_MAX_NEW_TOKENS


async def test_it_sends_the_limits_when_set(provider, upstream):
    gen = generation(max_tokens=2, temperature=0.25, stop_sequences=["\n\n"])

    deltas = await collect(provider, gen)

    body = upstream.requests[0].body
    assert (body["max_tokens"], body["temperature"], body["stop"]) == (2, 0.25, ["\n\n"])
    assert deltas == upstream.tokens[:2]


async def test_it_needs_no_key_for_a_local_server(provider, upstream, settings):
    settings.OPENAI_API_KEY = ""

    assert await collect(provider, generation()) == upstream.tokens
    assert upstream.requests[0].headers["authorization"] == f"Bearer {PLACEHOLDER_KEY}"


async def test_it_reports_usage(provider, upstream):
    upstream.tokens = ["a", "b", "c"]
    upstream.usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    gen = generation()

    await collect(provider, gen)

    assert (gen.prompt_tokens, gen.output_tokens) == (11, 7)


async def test_it_counts_chunks_when_the_upstream_reports_no_usage(provider, upstream):
    upstream.tokens = ["a", "b", "c"]
    upstream.send_usage = False
    gen = generation()

    await collect(provider, gen)

    assert (gen.prompt_tokens, gen.output_tokens) == (None, 3)


async def test_it_turns_a_401_into_an_auth_error(provider, upstream, caplog):
    upstream.fail_with(401, "Incorrect API key provided: sk-tes***key.")

    error = await failure(provider)

    assert error.code == "upstream_auth"
    assert "sk-tes" not in error.message
    assert "Incorrect API key provided: sk-tes***key." in caplog.text


async def test_it_turns_a_429_into_a_rate_limit_error(provider, upstream):
    upstream.fail_with(429, "Rate limit reached for requests.")

    error = await failure(provider)

    assert error.code == "upstream_rate_limited"
    # The SDK retries 429s by default; the provider must surface them at once instead.
    assert len(upstream.requests) == 1


async def test_it_turns_a_500_into_an_unavailable_error(provider, upstream):
    upstream.fail_with(500, "The server had an error while processing your request.")

    error = await failure(provider)

    assert error.code == "upstream_unavailable"
    assert "500" in error.message
    assert len(upstream.requests) == 1


async def test_it_turns_a_404_into_a_model_not_found_error(provider):
    error = await failure(provider, generation(model="no-such-model"))

    assert error.code == "upstream_model_not_found"
    assert "no-such-model" in error.message


async def test_it_logs_the_upstreams_message_for_other_4xx_but_tells_the_user_none(
    provider, upstream, caplog
):
    secret = "Account org-internal-42 at http://10.0.0.7:8000 is over its quota."
    upstream.fail_with(400, secret)

    error = await failure(provider)

    assert error.code == "upstream_error"
    assert error.message == "The model provider refused the request (HTTP 400)."
    assert secret in caplog.text


@pytest.mark.parametrize("knob", ["response_delay", "chunk_delay"])
async def test_it_times_out(provider, upstream, settings, knob):
    settings.OPENAI_TIMEOUT_SECONDS = 0.3
    setattr(upstream, knob, 3.0)

    error = await failure(provider)

    assert error.code == "upstream_timeout"
    assert "0.3 seconds" in error.message
    # One attempt only: the SDK would otherwise retry a time-out twice.
    assert len(upstream.requests) == 1


async def test_it_reports_an_unreachable_upstream_without_its_address(provider, settings, caplog):
    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{free_port()}/v1"

    error = await failure(provider)

    assert error.code == "upstream_unreachable"
    assert "127.0.0.1" not in error.message
    assert settings.OPENAI_BASE_URL in caplog.text


@pytest.mark.parametrize("drop", [False, True], ids=["error_event", "dropped_connection"])
async def test_it_turns_a_mid_stream_failure_into_an_error(provider, upstream, drop, caplog):
    upstream.fail_mid_stream(after=2, drop=drop, message="The model crashed on node gpu-7.")
    deltas = []

    with pytest.raises(ProviderError) as caught:
        async with contextlib.aclosing(provider.stream(generation())) as stream:
            async for delta in stream:
                deltas.append(delta)

    assert deltas == upstream.tokens[:2]
    assert caught.value.code in ("upstream_error", "upstream_unavailable")
    assert "gpu-7" not in caught.value.message
    if not drop:
        assert "The model crashed on node gpu-7." in caplog.text


async def test_it_closes_the_upstream_when_stopped(provider, upstream):
    upstream.tokens = ["tick "] * 200
    upstream.chunk_delay = 0.05
    first_delta = asyncio.Event()

    async def consume():
        async with contextlib.aclosing(provider.stream(generation())) as stream:
            async for _ in stream:
                first_delta.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first_delta.wait(), timeout=5)
    assert not upstream.disconnected.is_set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await asyncio.to_thread(upstream.disconnected.wait, 2)
    assert not upstream.completed.is_set()


async def test_it_closes_the_upstream_when_the_stop_event_is_set(provider, upstream):
    upstream.tokens = ["tick "] * 200
    upstream.chunk_delay = 0.05
    gen = generation()

    deltas = []
    async with contextlib.aclosing(provider.stream(gen)) as stream:
        async for delta in stream:
            deltas.append(delta)
            gen.stop.set()

    assert deltas == ["tick "]
    assert await asyncio.to_thread(upstream.disconnected.wait, 2)


async def test_it_names_the_missing_variable(settings):
    settings.OPENAI_API_KEY = ""
    settings.OPENAI_BASE_URL = ""

    with pytest.raises(ConfigurationError) as caught:
        await collect(OpenAIProvider(), generation())

    assert caught.value.code == "provider_not_configured"
    assert "OPENAI_API_KEY" in caught.value.message


STREAM = (
    b'data: {"choices": [{"delta": {"role": "assistant", "content": ""}}]}\r\n\r\n'
    b": a comment line\n\n"
    b'event: message\ndata: {"choices": [{"delta": {"content": "Hel"}}]}\n\n'
    b'data: {"choices": [{"delta":\ndata:  {"content": "lo"}}]}\n\n'
    b'data:{"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}\r\r'
    b"data: [DONE]\n\n"
)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, len(STREAM)])
def test_its_sse_decoder_gives_the_same_events_however_the_bytes_are_cut(size):
    decoder = SSEDecoder()

    found = [
        data for at in range(0, len(STREAM), size) for data in decoder.feed(STREAM[at : at + size])
    ]

    gen = generation()
    texts = [t for data in found[:-1] for t in read_chunk(json.loads(data), gen)]
    assert texts == ["Hel", "lo"]
    assert found[-1] == b"[DONE]"
    assert (gen.prompt_tokens, gen.output_tokens) == (3, 2)


@pytest.mark.parametrize(
    "chunk",
    [[], "text", {"choices": None}, {"choices": ["x", {"delta": "y"}, {"delta": {"content": 5}}]}],
)
def test_it_skips_chunks_of_other_shapes(chunk):
    gen = generation()

    assert read_chunk(chunk, gen) == []
    assert gen.output_tokens == 0


async def test_it_sends_its_requests_through_the_asyncio_transport(provider, upstream, monkeypatch):
    sent = []
    handle = AsyncioTransport.handle_async_request

    async def spy(self, request):
        sent.append(request.url.path)
        return await handle(self, request)

    monkeypatch.setattr(AsyncioTransport, "handle_async_request", spy)

    assert await collect(provider, generation()) == upstream.tokens
    assert sent == ["/v1/chat/completions"]


async def test_it_goes_through_a_proxy_named_in_the_environment(provider, settings, monkeypatch):
    seen = []
    body = b'data: {"choices":[{"index":0,"delta":{"content":"via proxy"}}]}\n\ndata: [DONE]\n\n'
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n"

    async def proxy(reader, writer):
        seen.append((await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")[0])
        writer.write(head + b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    async with await asyncio.start_server(proxy, "127.0.0.1", 0) as server:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
        settings.OPENAI_BASE_URL = "http://upstream.invalid/v1"  # resolves nowhere

        assert await collect(provider, generation()) == ["via proxy"]

    assert seen == [b"POST http://upstream.invalid/v1/chat/completions HTTP/1.1"]
