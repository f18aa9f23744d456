"""Models behind any OpenAI-compatible chat API: OpenAI, Gemini, vLLM, Ollama, llama.cpp."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import urllib.request
from collections.abc import AsyncIterator

import httpx2  # the SDK's HTTP client
import openai
from django.conf import settings

from .base import ConfigurationError, Generation, Provider, ProviderError
from .transport import AsyncioTransport

logger = logging.getLogger(__name__)

# Local servers (Ollama, llama.cpp, vLLM) ignore the key, but the SDK refuses to send none.
PLACEHOLDER_KEY = "sk-no-key-required"
# After `data: [DONE]`, how long the rest of the body (its end, normally) may take to come.
DRAIN_SECONDS = 0.1


class OpenAIProvider(Provider):
    """Streams chat completions from OPENAI_BASE_URL (or api.openai.com when unset)."""

    name = "openai"

    def __init__(self) -> None:
        self._client: openai.AsyncOpenAI | None = None

    def models(self) -> list[str]:
        """The model ids listed in OPENAI_MODELS."""
        return list(settings.OPENAI_MODELS)

    def context_window(self, model: str) -> int:
        """OPENAI_CONTEXT_TOKENS: the API does not say, so the operator does."""
        return settings.OPENAI_CONTEXT_TOKENS

    def client(self) -> openai.AsyncOpenAI:
        """The SDK client, created from settings on first use."""
        if self._client is None:
            key, base_url = settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL
            if not key and not base_url:
                raise ConfigurationError(
                    "The OpenAI-compatible provider is not configured: set OPENAI_API_KEY "
                    "(or OPENAI_BASE_URL for a local server such as Ollama)."
                )
            self._client = openai.AsyncOpenAI(
                api_key=key or PLACEHOLDER_KEY,
                base_url=base_url or None,
                timeout=settings.OPENAI_TIMEOUT_SECONDS,
                # A silent retry looks like a hung reply; surface the error at once instead.
                max_retries=0,
                http_client=http_client(),
            )
        return self._client

    async def stream(self, generation: Generation) -> AsyncIterator[str]:
        """Yield the reply's text deltas as the upstream sends them."""
        started = False
        try:
            # The SDK sends the request and raises its errors; the chunks are read here, as
            # plain JSON (see the module's README section): its typed chunk objects cost
            # several times what the rest of a proxied reply does. Its untyped `post` sends
            # the parameters as they are: create() walks each one, every message included,
            # through its typed transform first (~0.5 ms a request, for parameters built here).
            response = await self.client().post(
                "/chat/completions",
                body=request_params(generation),
                cast_to=httpx2.Response,
                stream=True,
            )
            async with (
                contextlib.aclosing(response),
                contextlib.aclosing(chunks(response)) as received,
            ):
                async for chunk in received:
                    started = True
                    for text in read_chunk(chunk, generation):
                        yield text
                    if generation.stop.is_set():
                        break
        except (openai.OpenAIError, json.JSONDecodeError) as err:
            raise self.error(err, generation.model, started) from err
        # Leaving the block closes the response; one not read to its end closes its HTTP
        # connection, which is how an upstream learns to stop generating. This also runs
        # when the consumer is cancelled.

    def error(self, err: Exception, model: str, started: bool) -> ProviderError:
        """Translate an SDK failure into a sentence and a code for the user.

        What the upstream said, and where it is, goes to the log only: its error bodies
        can quote the prompt, name accounts and keys, or reveal internal addresses.
        """
        logger.warning(
            "OpenAI-compatible upstream at %s failed for model %r: %r (upstream said: %s)",
            self.client().base_url, model, err, upstream_message(err),
        )  # fmt: skip
        timeout = settings.OPENAI_TIMEOUT_SECONDS
        if isinstance(err, openai.APITimeoutError):
            message = f"The model provider did not respond within {timeout:g} seconds."
            return ProviderError("upstream_timeout", message)
        if isinstance(err, openai.APIConnectionError) and started:
            message = "The connection to the model provider broke off in the middle of the reply."
            return ProviderError("upstream_unavailable", message)
        if isinstance(err, openai.APIConnectionError):
            return ProviderError("upstream_unreachable", "Could not reach the model provider.")
        if isinstance(err, json.JSONDecodeError):
            return ProviderError("upstream_error", "The model provider sent a malformed reply.")
        return status_error(getattr(err, "status_code", None), model)


def http_client() -> httpx2.AsyncClient:
    """The SDK's httpx client and limits, on the cheaper transport (see transport.py).

    httpx routes through a proxy named in the environment (HTTPS_PROXY and the like) only
    on its own transport: with one set, the client keeps it.
    """
    if any(scheme != "no" for scheme in urllib.request.getproxies()):
        return openai.DefaultAsyncHttpxClient()
    return openai.DefaultAsyncHttpxClient(
        transport=AsyncioTransport(openai.DEFAULT_CONNECTION_LIMITS)
    )


def request_params(generation: Generation) -> dict:
    """The create() arguments: only standard ones, and optional ones only when set."""
    cap = settings.CHAT_MAX_NEW_TOKENS
    params = {
        "model": generation.model,
        "messages": generation.messages,
        "stream": True,
        "stream_options": {"include_usage": True},
        # Always a cap: an upstream's own default may be the whole context, on the bill.
        "max_tokens": min(generation.max_tokens or cap, cap),
    }
    if generation.temperature is not None:
        params["temperature"] = generation.temperature
    if generation.stop_sequences:
        params["stop"] = list(generation.stop_sequences)
    return params


async def chunks(response: httpx2.Response) -> AsyncIterator[dict]:
    """The JSON objects of an SSE body, up to `data: [DONE]`; SDK errors for broken bodies."""
    events = SSEDecoder()
    body = response.aiter_bytes()
    try:
        async for received in body:
            for data in events.feed(received):
                if data.startswith(b"[DONE]"):
                    await _drain(body)
                    return
                chunk = json.loads(data)
                if isinstance(chunk, dict) and chunk.get("error"):
                    raise stream_error(chunk["error"], response.request)
                yield chunk
    except httpx2.TimeoutException as err:
        raise openai.APITimeoutError(request=response.request) from err
    except (httpx2.RequestError, ssl.SSLError) as err:
        raise openai.APIConnectionError(request=response.request) from err


async def _drain(body: AsyncIterator[bytes]) -> None:
    """Read what follows [DONE] (the body's end, normally), so the connection can be reused."""
    with contextlib.suppress(TimeoutError, httpx2.RequestError, ssl.SSLError):
        async with asyncio.timeout(DRAIN_SECONDS):
            async for _ in body:
                pass


def stream_error(error, request: httpx2.Request) -> openai.APIError:
    """An error event inside the stream, as the SDK raises it."""
    message = error.get("message") if isinstance(error, dict) else None
    if not isinstance(message, str) or not message:
        message = "An error occurred during streaming"
    return openai.APIError(message, request, body=error)


class SSEDecoder:
    """Server-sent events, incrementally: bytes in, each event's `data` out (as bytes).

    Only `data` fields matter here (OpenAI-compatible streams carry nothing else of use);
    lines may end in LF, CRLF or CR, and an event's several data lines join with LF.
    """

    def __init__(self) -> None:
        self._partial = b""
        self._data: list[bytes] = []

    def feed(self, received: bytes) -> list[bytes]:
        lines = (self._partial + received).splitlines(keepends=True)
        # A last line without its LF may be incomplete (or be half of a CRLF): keep it.
        self._partial = lines.pop() if lines and not lines[-1].endswith(b"\n") else b""
        found = []
        for line in lines:
            line = line.rstrip(b"\r\n")
            if not line:
                if self._data:
                    found.append(b"\n".join(self._data))
                    self._data = []
            elif line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value.startswith(b" ") else value)
        return found


def read_chunk(chunk, generation: Generation) -> list[str]:
    """The chunk's non-empty text deltas; records token counts on `generation`."""
    # Checked throughout: compatible servers omit fields, or send other shapes.
    if not isinstance(chunk, dict):
        return []
    texts = []
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        content = delta.get("content") if isinstance(delta, dict) else None
        if content and isinstance(content, str):
            texts.append(content)
    # Until (unless) the final usage chunk arrives, each content chunk counts as one token.
    generation.output_tokens += len(texts)
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        if isinstance(usage.get("completion_tokens"), int):
            generation.output_tokens = usage["completion_tokens"]
        if isinstance(usage.get("prompt_tokens"), int):
            generation.prompt_tokens = usage["prompt_tokens"]
    return texts


def status_error(status: int | None, model: str) -> ProviderError:
    """The ProviderError for an HTTP status (None: an error event inside the stream)."""
    if status in (401, 403):
        message = "The model provider rejected this site's credentials."
        return ProviderError("upstream_auth", message)
    if status == 429:
        message = "The model provider is rate-limiting requests; wait a moment and try again."
        return ProviderError("upstream_rate_limited", message)
    if status == 404:
        message = f"The model provider has no model {model!r}."
        return ProviderError("upstream_model_not_found", message)
    if status is not None and status >= 500:
        message = f"The model provider is unavailable right now (HTTP {status}); try again later."
        return ProviderError("upstream_unavailable", message)
    if status is not None:
        message = f"The model provider refused the request (HTTP {status})."
        return ProviderError("upstream_error", message)
    return ProviderError("upstream_error", "The model provider failed while writing the reply.")


def upstream_message(err: Exception) -> str:
    """The upstream's own explanation, taken from its OpenAI-style error body."""
    body = getattr(err, "body", None)
    if isinstance(body, list) and body and isinstance(body[0], dict):
        # Gemini's OpenAI endpoint wraps its error object in a list.
        body = body[0].get("error", body[0])
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    if isinstance(body, str) and body.strip():
        return body.strip()[:300]
    return getattr(err, "message", None) or str(err)
