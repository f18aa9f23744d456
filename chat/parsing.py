"""Request bodies and uploaded files parsed and checked: small ones here, large ones in a
worker process.

Parsing and checking hold the GIL: a megabyte of small JSON objects (30,000 chat
messages, say) is tens of milliseconds in which nothing else in the process moves, and
on the event loop no other user's reply either; a history file's thousands of messages
are a few hundred. A thread would not help, since it would hold the same lock. So input
over INLINE_BYTES is parsed and checked in a worker process, by the same function, and
only the result comes back: for a body refused, one small error. Smaller input costs
less than the trip there, and is parsed where it is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from django.conf import settings

from chat import parsing_process, safejson
from chat.errors import BadRequest, Unavailable
from chat.schema import validate

# Below this many bytes a body takes about a millisecond to parse: less than the trip.
INLINE_BYTES = 64 * 1024
# One process: large bodies wait for each other there, not for everyone else's requests.
WORKERS = 1

_pool: ProcessPoolExecutor | None = None
_pool_pid: int | None = None
_pool_lock = threading.Lock()


def parse_body(raw: bytes, schema: dict | None, default_code: str = "invalid_field") -> dict:
    """`raw` as a JSON object that fits `schema`, or a 400/413 ChatError saying why not."""
    try:
        body = safejson.loads(raw or b"{}")
    except safejson.NotJSON as exc:
        raise BadRequest(f"The body is not valid JSON: {exc}.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.", code="invalid_json")
    if schema is not None:
        validate(body, schema, default_code)
    return body


def parsed(raw: bytes, schema: dict | None, default_code: str = "invalid_field") -> dict:
    """parse_body, in the worker process when the body is large; for sync code."""
    return call(parse_body, raw, schema, default_code)


async def parsed_async(raw: bytes, schema: dict | None, default_code: str = "invalid_field"):
    """parse_body, in the worker process when the body is large; the event loop runs on."""
    if len(raw) <= INLINE_BYTES:
        return parse_body(raw, schema, default_code)
    with _worker_errors():
        return await asyncio.wrap_future(_submit(parse_body, raw, schema, default_code))


def call(function, raw: bytes, *args):
    """function(raw, *args), in the worker process when `raw` is large; for sync code.

    `function` must be importable by name; what it returns or raises comes back pickled.
    """
    if len(raw) <= INLINE_BYTES:
        return function(raw, *args)
    with _worker_errors():
        return _submit(function, raw, *args).result()


def _submit(function, *args) -> Future:
    chat_settings = {name: getattr(settings, name) for name in dir(settings) if name[:5] == "CHAT_"}
    return _worker().submit(_with_settings, chat_settings, function, *args)


def _with_settings(chat_settings: dict, function, *args):
    # The worker reads the site's settings from the environment, as the server did; tests
    # change them as they run, so those the parsers read travel with each call.
    for name, value in chat_settings.items():
        setattr(settings, name, value)
    return function(*args)


@contextlib.contextmanager
def _worker_errors():
    """A worker that died (killed, out of memory) is replaced; this body gets a 503."""
    try:
        yield
    except BrokenProcessPool:
        _forget_pool()
        raise Unavailable("The body could not be read just now; send it again.") from None


def start_worker() -> None:
    """Start the worker now (it takes a second), so that the first large body need not wait."""
    _worker().submit(int)


def _worker() -> ProcessPoolExecutor:
    """This process's worker pool: fresh interpreters, at a lower priority, with Django set up.

    Spawned rather than forked: a fork of a process with running threads can inherit a
    lock one of them held, and never see it released. A server that forks its workers
    after loading the app gets a pool of its own in each.
    """
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            context = multiprocessing.get_context("spawn")
            _pool = ProcessPoolExecutor(
                WORKERS, mp_context=context, initializer=parsing_process.set_up
            )
            _pool_pid = os.getpid()
        return _pool


def _forget_pool() -> None:
    """A worker died (killed, out of memory): the next large body starts a new one."""
    global _pool
    with _pool_lock:
        broken, _pool = _pool, None
    if broken is not None:
        broken.shutdown(wait=False, cancel_futures=True)
