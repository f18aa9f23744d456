"""Models behind any OpenAI-compatible chat API: OpenAI, Gemini, vLLM, Ollama, llama.cpp."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import openai
from django.conf import settings

from .base import ConfigurationError, Generation, Provider, ProviderError

logger = logging.getLogger(__name__)

# Local servers (Ollama, llama.cpp, vLLM) ignore the key, but the SDK refuses to send none.
PLACEHOLDER_KEY = "sk-no-key-required"


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
            )
        return self._client

    async def stream(self, generation: Generation) -> AsyncIterator[str]:
        """Yield the reply's text deltas as the upstream sends them."""
        client = self.client()
        upstream = None
        started = False
        try:
            upstream = await client.chat.completions.create(**request_params(generation))
            async for chunk in upstream:
                started = True
                for text in read_chunk(chunk, generation):
                    yield text
                if generation.stop.is_set():
                    break
        except (openai.OpenAIError, json.JSONDecodeError) as err:
            raise self.error(err, generation.model, started) from err
        finally:
            # Closing the response closes its HTTP connection, which is how an upstream
            # learns to stop generating; this also runs when the consumer is cancelled.
            if upstream is not None:
                await upstream.close()

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


def read_chunk(chunk, generation: Generation) -> list[str]:
    """The chunk's non-empty text deltas; records token counts on `generation`."""
    # getattr throughout: compatible servers omit fields the SDK does not validate.
    choices = getattr(chunk, "choices", None) or []
    deltas = [getattr(choice, "delta", None) for choice in choices]
    texts = [d.content for d in deltas if d is not None and getattr(d, "content", None)]
    # Until (unless) the final usage chunk arrives, each content chunk counts as one token.
    generation.output_tokens += len(texts)
    usage = getattr(chunk, "usage", None)
    if isinstance(getattr(usage, "completion_tokens", None), int):
        generation.output_tokens = usage.completion_tokens
    if isinstance(getattr(usage, "prompt_tokens", None), int):
        generation.prompt_tokens = usage.prompt_tokens
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
