"""Which provider serves which model id. Provider SDKs are imported only in this package."""

from __future__ import annotations

import logging
import threading
from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .base import ConfigurationError, Generation, Provider, ProviderError

log = logging.getLogger(__name__)

__all__ = [
    "ConfigurationError",
    "Generation",
    "Provider",
    "ProviderError",
    "available_models",
    "check_default_model",
    "preload_default",
    "provider_for",
]


@cache
def _providers() -> tuple[Provider, ...]:
    found: list[Provider] = []
    if settings.CHAT_LOCAL_ENABLED and settings.REDIS_URL:
        from .remote import RemoteProvider  # web processes leave the model to workers

        found.append(RemoteProvider())
    elif settings.CHAT_LOCAL_ENABLED:
        from .local import LocalProvider

        found.append(LocalProvider())
    if settings.OPENAI_MODELS:
        from .openai_compat import OpenAIProvider

        found.append(OpenAIProvider())
    if settings.CHAT_FAKE_MODEL:
        from .fake import FakeProvider

        found.append(FakeProvider())
    return tuple(found)


def available_models() -> list[dict]:
    """Every model offered, as API.md's `/api/models` lists them."""
    return [
        {"id": model, "provider": provider.name, "default": model == settings.CHAT_DEFAULT_MODEL}
        for provider in _providers()
        for model in provider.models()
    ]


def provider_for(model: str) -> Provider | None:
    """The provider that serves `model`, or None if no provider offers it."""
    for provider in _providers():
        if model in provider.models():
            return provider
    return None


def preload_default() -> threading.Thread | None:
    """Start getting the default model ready in a background thread (CHAT_LOCAL_PRELOAD).

    A server calls this as it starts, so the first reply after the page is up doesn't wait
    for the model to load; a reply that arrives sooner waits for the same load.
    """
    if not settings.CHAT_LOCAL_PRELOAD:
        return None
    provider = provider_for(settings.CHAT_DEFAULT_MODEL)
    if provider is None or provider.ready():
        return None
    thread = threading.Thread(target=_preload, args=(provider,), name="preload", daemon=True)
    thread.start()
    return thread


def _preload(provider: Provider) -> None:
    log.info("Loading the default model %s in the background", settings.CHAT_DEFAULT_MODEL)
    try:
        provider.preload()
    except Exception:  # the first reply tries again, and fails with a message if it must
        log.exception("Loading the default model in the background failed")
        return
    log.info("The default model %s is ready", settings.CHAT_DEFAULT_MODEL)


def check_default_model() -> None:
    """Stop the start-up if CHAT_DEFAULT_MODEL names no model on offer, listing those that are."""
    offered = [model["id"] for model in available_models()]
    if settings.CHAT_DEFAULT_MODEL not in offered:
        available = ", ".join(offered) or "none (see CHAT_LOCAL_ENABLED, OPENAI_MODELS)"
        raise ImproperlyConfigured(
            f"CHAT_DEFAULT_MODEL is {settings.CHAT_DEFAULT_MODEL!r}, which no provider offers; "
            f"set it to one of the models available: {available}."
        )


def reset() -> None:
    """Forget the providers, so changed settings take effect (tests use this)."""
    _providers.cache_clear()
