"""LocalProvider: generation in worker threads, streamed to the event loop token by token."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import torch
from django.conf import settings
from transformers.generation.stopping_criteria import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from ..base import Generation, Provider, ProviderError
from .loading import LoadedModel, shared_model
from .text import IncrementalDecoder, StopSequenceFilter

log = logging.getLogger(__name__)

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def executor() -> ThreadPoolExecutor:
    """The worker threads that load the model and run generation, off the event loop."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=settings.CHAT_LOCAL_MAX_CONCURRENCY, thread_name_prefix="local-model"
            )
    return _executor


class LocalProvider(Provider):
    """Generates in this process with a small model; needs no network and no keys."""

    name = "local"

    def models(self) -> list[str]:
        """The one configured local model id."""
        return [settings.CHAT_LOCAL_MODEL_ID]

    def preload(self) -> None:
        """Load the model now, in the calling thread, so the first reply doesn't wait."""
        shared_model()

    def context_window(self, model: str) -> int:
        """The model's max_position_embeddings (loads the model if it isn't yet)."""
        return shared_model().context_window

    def count_tokens(self, model: str, messages: list[dict]) -> int:
        """The exact prompt length, chat template included (loads the model if it isn't yet)."""
        tokenizer = shared_model().tokenizer
        prompt = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_dict=True
        )
        return len(prompt["input_ids"])

    async def stream(self, generation: Generation) -> AsyncIterator[str]:
        """Yield the reply's text deltas; cancelling the consumer stops the worker thread."""
        loop = asyncio.get_running_loop()
        loaded = await _load_off_loop(loop)
        queue: asyncio.Queue = asyncio.Queue()
        halt = threading.Event()  # ends the worker without claiming the user stopped the reply
        streamer = _QueueStreamer(loop, queue, generation)
        worker = loop.run_in_executor(executor(), _generate, loaded, generation, streamer, halt)
        worker.add_done_callback(_signal_end(queue))
        decoder = IncrementalDecoder(loaded.tokenizer, skip_ids=_eos_ids(loaded))
        stops = StopSequenceFilter(generation.stop_sequences)
        try:
            while (ids := await queue.get()) is not None:
                if text := stops.feed(decoder.add(ids)):
                    yield text
                if stops.stopped:
                    return
            _raise_if_failed(worker)
            if text := stops.feed(decoder.flush(), final=True):
                yield text
        except (asyncio.CancelledError, GeneratorExit):
            generation.stop.set()  # the consumer went away: that is how the app stops a reply
            raise
        finally:
            halt.set()  # a no-op once the worker has finished; otherwise it stops next step


async def _load_off_loop(loop: asyncio.AbstractEventLoop) -> LoadedModel:
    """The shared model, loaded in a worker thread the first time (seconds of work)."""
    try:
        return await loop.run_in_executor(executor(), shared_model)
    except ProviderError:
        raise
    except Exception as exc:
        log.exception("Loading the local model failed")
        raise ProviderError(
            "model_unavailable", "The local model could not be loaded; see the server log."
        ) from exc


def _generate(loaded: LoadedModel, generation: Generation, streamer, halt) -> None:
    """Run model.generate in a worker thread; tokens reach the loop through `streamer`."""
    prompt = loaded.tokenizer.apply_chat_template(
        generation.messages, add_generation_prompt=True, return_dict=True, return_tensors="pt"
    ).to(loaded.device)
    generation.prompt_tokens = prompt["input_ids"].shape[-1]
    room = loaded.context_window - generation.prompt_tokens
    if room <= 0:
        raise ProviderError(
            "context_length_exceeded", "The conversation is too long for the local model."
        )
    if generation.stop.is_set() or halt.is_set():  # ended while waiting for a worker
        return
    sampling = {"do_sample": False}
    if generation.temperature:  # None or 0 means greedy
        sampling = {"do_sample": True, "temperature": generation.temperature}
    loaded.model.generate(
        **prompt,
        **sampling,
        max_new_tokens=min(generation.max_tokens or settings.CHAT_MAX_NEW_TOKENS, room),
        streamer=streamer,
        stopping_criteria=StoppingCriteriaList([_StopWhenSet(generation.stop, halt)]),
        pad_token_id=_pad_id(loaded.tokenizer),
    )


class _QueueStreamer(BaseStreamer):
    """Hands each new token id from the worker thread to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue, generation):
        self.loop, self.queue, self.generation = loop, queue, generation
        self.prompt_seen = False

    def put(self, value) -> None:
        if not self.prompt_seen:  # generate() passes the prompt first; it is not output
            self.prompt_seen = True
            return
        ids = value.reshape(-1).tolist()
        self.generation.output_tokens += len(ids)
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, ids)
        except RuntimeError:  # the loop has closed: nobody is listening any more
            self.generation.stop.set()

    def end(self) -> None:
        pass  # the end is signalled by the worker's future completing: see _signal_end


class _StopWhenSet(StoppingCriteria):
    """Ends generation after the current decode step once any of the events is set."""

    def __init__(self, *events: threading.Event):
        self.events = events

    def __call__(self, input_ids, scores, **kwargs):
        stop = any(event.is_set() for event in self.events)
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)


def _signal_end(queue: asyncio.Queue):
    """A done-callback that queues the end marker behind the worker's last token."""

    def callback(worker: asyncio.Future) -> None:
        if not worker.cancelled():
            worker.exception()  # mark it retrieved: a failure after a stop needs no warning
        queue.put_nowait(None)

    return callback


def _raise_if_failed(worker: asyncio.Future) -> None:
    """Re-raise the worker's exception, if any, as a ProviderError a user can read."""
    exc = worker.exception()
    if isinstance(exc, ProviderError):
        raise exc
    if exc is not None:
        log.error("Local generation failed", exc_info=exc)
        raise ProviderError(
            "generation_failed", "The local model failed while writing the reply."
        ) from exc


def _pad_id(tokenizer) -> int | None:
    # Passing it spares a warning per reply from tokenizers that define none.
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def _eos_ids(loaded: LoadedModel) -> set[int]:
    eos = loaded.model.generation_config.eos_token_id
    return set(eos if isinstance(eos, list) else [] if eos is None else [eos])
