"""Continuous batching: one thread per model decodes a token for every active reply at once.

On two cores a forward pass over one sequence costs nearly as much as over sixteen (the
work is dominated by per-layer overhead and reading the weights), so replies share steps
instead of threads. Each turn of the loop:
1. takes newly submitted requests, and drops those whose stop event is set;
2. prefills waiting prompts (a bounded number of tokens, so running replies keep
   streaming) and merges them into the batch with their first token;
3. decodes one token for every active reply, which leaves the batch as soon as it
   meets EOS or its token limit.
A failure fails the requests of that forward pass, never the engine.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import torch
from django.conf import settings

from .batch import PaddedBatch, prefill_cost
from .loading import LoadedModel, shared_model
from .packing import pack_linear_layers

log = logging.getLogger(__name__)

# Token positions (padding included, a shared prefix once) prefilled between two decode
# steps. Running replies pause meanwhile: ~1 ms a position on two cores, so at most about
# half a second. Sixteen new chats sharing the template's system prompt cost ~250 and so
# get their first tokens together. A longer prompt alone is still prefilled in one go.
PREFILL_TOKENS = 512
DEFAULT_TOP_K = 50  # what model.generate samples from when the model sets no top_k


class Sink(Protocol):
    """Where a request's tokens go; called from the engine thread, so it must not block."""

    def token(self, token_id: int) -> None: ...

    def end(self, error: Exception | None) -> None: ...


@dataclass(eq=False)
class Request:
    """One reply to generate: its prompt, its limits, and the events that stop it early."""

    prompt_ids: list[int]
    max_new_tokens: int
    temperature: float | None
    sink: Sink
    stops: tuple[threading.Event, ...] = ()
    generated: int = 0
    next_token: int | None = None  # sampled, not yet fed back through the model

    def stopped(self) -> bool:
        """Whether any of its stop events is set."""
        return any(event.is_set() for event in self.stops)


class Engine:
    """Generates every submitted request of one model, batched, in one background thread."""

    def __init__(self, loaded: LoadedModel, max_batch: int, prefill_tokens: int = PREFILL_TOKENS):
        pack_linear_layers(loaded.model)  # from now on the model only generates
        self.model = loaded.model
        self.max_batch = max_batch
        self.prefill_tokens = prefill_tokens
        self.eos = loaded.eos_ids
        self.top_k = loaded.model.generation_config.top_k or DEFAULT_TOP_K
        self.inbox: queue.SimpleQueue[Request] = queue.SimpleQueue()
        self.waiting: deque[Request] = deque()
        self.active: list[Request] = []  # active[i] is row i of self.batch
        self.batch: PaddedBatch | None = None
        self.thread = threading.Thread(target=self._run, name="local-model-engine", daemon=True)
        self.thread.start()

    def submit(self, request: Request) -> None:
        """Queue a request; its tokens and end reach `request.sink` from the engine thread."""
        self.inbox.put(request)

    def _run(self) -> None:
        with torch.inference_mode():
            while True:
                try:
                    self._turn()
                except Exception as exc:  # a bug here must not leave callers waiting forever
                    log.exception("The local model's batching loop failed")
                    self._fail([*self.active, *self.waiting], exc)
                    self.active, self.batch = [], None
                    self.waiting.clear()

    def _turn(self) -> None:
        self._collect(block=not (self.active or self.waiting))
        self._drop_stopped()
        self._admit()
        if self.active:
            self._decode()

    def _collect(self, block: bool) -> None:
        if block:  # idle: sleep until a request arrives
            self.waiting.append(self.inbox.get())
        while True:
            try:
                self.waiting.append(self.inbox.get_nowait())
            except queue.Empty:
                return

    def _drop_stopped(self) -> None:
        for request in [r for r in self.waiting if r.stopped()]:
            self.waiting.remove(request)
            _end(request, None)
        self._remove([row for row, r in enumerate(self.active) if r.stopped()])

    def _admit(self) -> None:
        """Prefill the next waiting prompts and add them to the batch with their first token."""
        group = self._next_group()
        if not group:
            return
        try:
            batch, logits = PaddedBatch.prefill(self.model, [r.prompt_ids for r in group])
        except Exception as exc:
            log.exception("Prefilling %d prompts failed", len(group))
            self._fail(group, exc)
            return
        finished = self._emit(group, self._choose(logits, group))
        self._join(group, batch, finished)

    def _next_group(self) -> list[Request]:
        """The waiting requests to prefill next, in order, within the batch size and the budget."""
        group: list[Request] = []
        while self.waiting and len(self.active) + len(group) < self.max_batch:
            prompts = [r.prompt_ids for r in [*group, self.waiting[0]]]
            if group and prefill_cost(prompts) > self.prefill_tokens:
                break
            group.append(self.waiting.popleft())
        return group

    def _join(self, group: list[Request], batch: PaddedBatch, finished: list[int]) -> None:
        staying = [row for row in range(len(group)) if row not in finished]
        for row in finished:
            _end(group[row], None)
        if not staying:
            return
        if finished:
            batch.keep(staying)
        # Active first: should the merge fail, the loop's last resort fails them with the rest.
        self.active.extend(group[row] for row in staying)
        if self.batch is None:
            self.batch = batch
        else:
            self.batch.merge(batch)

    def _decode(self) -> None:
        try:
            logits = self.batch.decode(self.model, [r.next_token for r in self.active])
        except Exception as exc:
            log.exception("A decode step over %d replies failed", len(self.active))
            self._fail(self.active, exc)
            self.active, self.batch = [], None
            return
        self._remove(self._emit(self.active, self._choose(logits, self.active)))

    def _emit(self, requests: list[Request], tokens: list[int]) -> list[int]:
        """Hand each request its token; return the rows whose reply is complete."""
        finished = []
        for row, (request, token) in enumerate(zip(requests, tokens, strict=True)):
            request.generated += 1
            request.next_token = token
            try:
                request.sink.token(token)
            except Exception:  # a broken listener ends its own reply, nobody else's
                log.exception("A local reply's listener failed")
                finished.append(row)
                continue
            if token in self.eos or request.generated >= request.max_new_tokens:
                finished.append(row)
        return finished

    def _remove(self, rows: list[int]) -> None:
        """End the requests in these rows of the batch (their sinks hear the end) and drop them."""
        if not rows:
            return
        for row in rows:
            _end(self.active[row], None)
        staying = [row for row in range(len(self.active)) if row not in rows]
        self.active = [self.active[row] for row in staying]
        if staying:
            self.batch.keep(staying)
        else:
            self.batch = None

    def _choose(self, logits: torch.Tensor, requests: list[Request]) -> list[int]:
        return choose_tokens(logits, [r.temperature for r in requests], self.top_k)

    def _fail(self, requests: list[Request], error: Exception) -> None:
        for request in requests:
            _end(request, error)


def choose_tokens(logits: torch.Tensor, temperatures: list[float | None], top_k: int) -> list[int]:
    """The next token of each row: the likeliest where temperature is None or 0, else sampled.

    Sampling follows model.generate's defaults: scale by the temperature, keep the top k.
    """
    logits = logits.float()  # as generate does: bf16 to float32 is exact, argmax unchanged
    picks = logits.argmax(-1)
    hot = [row for row, temperature in enumerate(temperatures) if temperature]
    if hot:
        rows = torch.tensor(hot, device=logits.device)
        scale = torch.tensor([temperatures[row] for row in hot], device=logits.device)
        top = (logits[rows] / scale.unsqueeze(-1)).topk(min(top_k, logits.shape[-1]))
        drawn = torch.multinomial(top.values.softmax(-1), 1)
        picks[rows] = top.indices.gather(-1, drawn).squeeze(-1)
    return picks.tolist()


def _end(request: Request, error: Exception | None) -> None:
    try:
        request.sink.end(error)
    except Exception:
        log.exception("A local reply's listener failed at its end")


_engine: Engine | None = None
_engine_lock = threading.Lock()


def engine_running() -> bool:
    """Whether the shared engine has started (so its model is loaded)."""
    return _engine is not None


def shared_engine() -> Engine:
    """The process-wide engine for the shared model, started on first use (loads the model)."""
    global _engine
    if _engine is None:
        loaded = shared_model()
        with _engine_lock:
            if _engine is None:
                _engine = Engine(loaded, max_batch=settings.CHAT_LOCAL_MAX_CONCURRENCY)
    return _engine
