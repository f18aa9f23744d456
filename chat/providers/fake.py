"""A deterministic model for tests and benchmarks, offered only when CHAT_FAKE_MODEL=true."""

import asyncio
from collections.abc import AsyncIterator

from django.conf import settings

from .base import Generation, Provider, ProviderError

SENTENCE = (
    "The quick brown fox jumps over the lazy dog while streams of tokens flow "
    "from model to browser, one small delta at a time, never behind a spinner."
)
WORDS = SENTENCE.split()


def fake_tokens(prompt: str, count: int) -> list[str]:
    """The reply to `prompt`: echoed text after 'echo ', failure after 'fail', else filler."""
    if prompt.startswith("echo "):
        text = prompt[len("echo ") :]
        return [text[i : i + 4] for i in range(0, len(text), 4)]
    return [("" if i == 0 else " ") + WORDS[i % len(WORDS)] for i in range(count)]


class FakeProvider(Provider):
    """Writes deterministic text at CHAT_FAKE_TOKENS_PER_SECOND; a test double, never a default."""

    name = "fake"

    def models(self) -> list[str]:
        return ["fake"]

    async def stream(self, generation: Generation) -> AsyncIterator[str]:
        prompt = generation.messages[-1]["content"] if generation.messages else ""
        filler = min(generation.max_tokens or settings.CHAT_FAKE_TOKENS, settings.CHAT_FAKE_TOKENS)
        pause = 1 / settings.CHAT_FAKE_TOKENS_PER_SECOND
        # An echo has as many tokens (of four characters) as it needs, up to max_tokens.
        tokens = fake_tokens(prompt, filler)[: generation.max_tokens or None]
        for index, token in enumerate(tokens):
            if index:
                await asyncio.sleep(pause)
            if prompt.startswith("fail") and index == 3:
                raise ProviderError("fake_failure", "The fake model failed, as asked.")
            generation.output_tokens += 1
            yield token
