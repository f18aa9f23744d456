"""The one contract every model provider fulfils."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


class ProviderError(Exception):
    """A failure a user can understand: `code` is snake_case, `message` a sentence."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class ConfigurationError(ProviderError):
    """A provider is missing configuration; the message names the variable to set."""

    def __init__(self, message: str):
        super().__init__("provider_not_configured", message)


@dataclass
class Generation:
    """One reply to produce: the prompt, the limits, and what the provider reports back.

    `messages` is a list of `{"role": ..., "content": ...}` dicts, already trimmed to
    the model's context window. `stop` is set (from any thread) when the reply must end
    early; providers check it at least once per decode step. Providers fill in
    `output_tokens` (and `prompt_tokens` where known) as they go.
    """

    model: str
    messages: list[dict]
    max_tokens: int | None = None
    temperature: float | None = None
    stop_sequences: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    output_tokens: int = 0
    prompt_tokens: int | None = None


class Provider(ABC):
    """A source of models. Subclasses declare `name` and implement `stream`."""

    name: str = ""

    @abstractmethod
    def models(self) -> list[str]:
        """The model ids this provider offers, as configured."""

    @abstractmethod
    def stream(self, generation: Generation) -> AsyncIterator[str]:
        """Yield the reply's text deltas; raise ProviderError on failure.

        Cancelling the consuming task must release the provider's resources (close
        the upstream connection, let a worker thread stop) within one decode step.
        """

    def ready(self) -> bool:
        """Whether a reply can start now, with nothing to load first."""
        return True

    def preload(self) -> None:
        """Get ready for the first reply now (load a model); most providers have nothing to do."""
        return None

    def context_window(self, model: str) -> int:
        """How many tokens the model can attend to, prompt and reply together."""
        return 8192

    def count_tokens(self, model: str, messages: list[dict]) -> int:
        """Estimate the prompt's size in tokens; providers with a tokenizer are exact."""
        return sum(self.count_each(model, messages))

    def count_each(self, model: str, messages: list[dict]) -> list[int]:
        """Each message's share of a prompt, in tokens, counted once (an estimate)."""
        return [len(m["content"]) // 4 + 4 for m in messages]
