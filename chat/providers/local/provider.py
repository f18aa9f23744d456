"""LocalProvider: replies from the batching engine, streamed to the event loop token by token."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from django.conf import settings

from ..base import Generation, Provider, ProviderError
from .text import IncrementalDecoder, StopSequenceFilter

if TYPE_CHECKING:
    from .loading import LoadedModel

log = logging.getLogger(__name__)
# What a chat template adds around each message (<|im_start|>role\n ... <|im_end|>\n):
# an estimate, which fit_to_context corrects with one exact count of the whole prompt.
TEMPLATE_TOKENS_PER_MESSAGE = 5
WARM_UP = [{"role": "user", "content": "Hello"}]
_warming = threading.Event()  # set while preload runs: a reply that starts now waits for it


class LocalProvider(Provider):
    """Generates in this process with a small model; needs no network and no keys."""

    name = "local"

    def models(self) -> list[str]:
        """The one configured local model id."""
        return [settings.CHAT_LOCAL_MODEL_ID]

    def ready(self) -> bool:
        """Whether the model is loaded, its engine running and not warming up."""
        return _engine().engine_running() and not _warming.is_set()

    def preload(self) -> None:
        """Load the model, start its engine and write a two-token reply, so the first doesn't wait.

        The short reply compiles the chat template and runs the model's first passes, which
        are slower than later ones (~40 ms on a quiet machine, more on a busy one).
        """
        _warming.set()
        try:
            loaded, engine = _loading().shared_model(), _engine()
            ended = threading.Event()
            warm_up = engine.Request(_prompt_ids(loaded, WARM_UP), 2, None, _WarmUpSink(ended))
            engine.shared_engine().submit(warm_up)
            ended.wait()
        finally:
            _warming.clear()
        if warm_up.sink.error:  # the engine has logged it; a broken model should be loud
            raise warm_up.sink.error

    counts_cheaply = False  # a tokenizer

    def context_window(self, model: str) -> int:
        """The model's max_position_embeddings (loads the model if it isn't yet)."""
        return _loading().shared_model().context_window

    def count_tokens(self, model: str, messages: list[dict]) -> int:
        """The exact prompt length, chat template included (loads the model if it isn't yet)."""
        return len(_prompt_ids(_loading().shared_model(), messages))

    def count_each(self, model: str, messages: list[dict]) -> list[int]:
        """Each message's tokens, in one batched call, plus the template's markers."""
        if not messages:
            return []
        encoded = (
            _loading()
            .shared_model()
            .tokenizer([m["content"] for m in messages], add_special_tokens=False)["input_ids"]
        )
        return [len(ids) + TEMPLATE_TOKENS_PER_MESSAGE for ids in encoded]

    async def stream(self, generation: Generation) -> AsyncIterator[str]:
        """Yield the reply's text deltas; cancelling the consumer ends it within a decode step."""
        loaded, prompt, limit = await _prepare_off_loop(generation)
        queue: asyncio.Queue = asyncio.Queue()
        halt = threading.Event()  # ends the request without claiming the user stopped the reply
        sink = _QueueSink(asyncio.get_running_loop(), queue, generation, halt)
        stops = (generation.stop, halt)
        engine = _engine()
        engine.shared_engine().submit(
            engine.Request(prompt, limit, generation.temperature, sink, stops)
        )
        decoder = IncrementalDecoder(loaded.tokenizer, skip_ids=loaded.eos_ids)
        ending = StopSequenceFilter(generation.stop_sequences)
        try:
            while isinstance(token := await queue.get(), int):
                if text := ending.feed(decoder.add([token])):
                    yield text
                if ending.stopped:
                    return
            _raise_if_failed(token)
            if text := ending.feed(decoder.flush(), final=True):
                yield text
        except (asyncio.CancelledError, GeneratorExit):
            generation.stop.set()  # the consumer went away: that is how the app stops a reply
            raise
        finally:
            halt.set()  # a no-op once the request has ended; otherwise it leaves the next step


def _engine():
    """The engine module, imported on first use: torch loads when a model is needed, so a
    process that only checks the configuration (manage.py migrate, say) starts fast."""
    from . import engine

    return engine


def _loading():
    from . import loading

    return loading


async def _prepare_off_loop(generation: Generation) -> tuple[LoadedModel, list[int], int]:
    """The model, the prompt's token ids and the reply's token limit, worked out in a thread.

    The first call loads the model, which takes seconds; later ones only tokenize.
    """
    try:
        return await asyncio.to_thread(_prepare, generation)
    except ProviderError:
        raise
    except Exception as exc:
        log.exception("Preparing a local reply failed")
        raise ProviderError(
            "generation_failed", "The local model failed while writing the reply."
        ) from exc


def _prepare(generation: Generation) -> tuple[LoadedModel, list[int], int]:
    loaded = _load()
    prompt = _prompt_ids(loaded, generation.messages)
    generation.prompt_tokens = len(prompt)
    room = loaded.context_window - len(prompt)
    if room <= 0:
        raise ProviderError(
            "context_length_exceeded", "The conversation is too long for the local model."
        )
    return loaded, prompt, min(generation.max_tokens or settings.CHAT_MAX_NEW_TOKENS, room)


def _load() -> LoadedModel:
    """The shared model, its engine started; any failure means the model is unavailable."""
    try:
        loaded = _loading().shared_model()
        _engine().shared_engine()
    except ProviderError:  # a configuration error names the variable to set
        raise
    except Exception as exc:
        log.exception("Loading the local model failed")
        raise ProviderError(
            "model_unavailable", "The local model could not be loaded; see the server log."
        ) from exc
    return loaded


def _prompt_ids(loaded: LoadedModel, messages: list[dict]) -> list[int]:
    prompt = loaded.tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_dict=True
    )
    return list(prompt["input_ids"])


class _QueueSink:
    """Hands each token id, then the end (None or the failure), from the engine to the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue, generation, halt):
        self.loop, self.queue, self.generation, self.halt = loop, queue, generation, halt

    def token(self, token_id: int) -> None:
        self.generation.output_tokens += 1
        self._put(token_id)

    def end(self, error: Exception | None) -> None:
        self._put(error)

    def _put(self, item) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the loop has closed: nobody is listening any more
            self.halt.set()


class _WarmUpSink:
    """Drops the warm-up reply's tokens and says when it has ended."""

    def __init__(self, ended: threading.Event):
        self.ended = ended
        self.error: Exception | None = None

    def token(self, token_id: int) -> None:
        pass

    def end(self, error: Exception | None) -> None:
        self.error = error
        self.ended.set()


def _raise_if_failed(error: Exception | None) -> None:
    """Re-raise the engine's failure, if any, as a ProviderError a user can read."""
    if isinstance(error, ProviderError):
        raise error
    if error is not None:  # the engine has logged it with its traceback
        raise ProviderError(
            "generation_failed", "The local model failed while writing the reply."
        ) from error
