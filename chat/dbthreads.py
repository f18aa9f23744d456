"""Threads that each keep a database connection and run the event loop's calls on it.

`loop.run_in_executor` over a ThreadPoolExecutor cost the event loop about a tenth of a
millisecond a call, under load: a concurrent Future with its Condition, chained to an
asyncio future by callbacks on both sides, and the pool's own bookkeeping. A reply makes
eight such calls, which came to as much as the statements they ran. Here a call is a
tuple on a queue, and its outcome comes back to the loop by one `call_soon_threadsafe`.
The model is the same as the pool's: a fixed set of threads, each with the connection
Django keeps per thread, taking calls in order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import threading


class DatabaseThreads:
    """`count` threads named `name`-N, started on first use, serving calls in order."""

    def __init__(self, count: int, name: str):
        self.count, self._name = count, name
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._starting = threading.Lock()

    async def call(self, function, *args):
        """`function(*args)`, run on one of the threads; its result or its exception."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._start()
        self._calls.put((loop, future, function, args))
        return await future

    def submit(self, function) -> concurrent.futures.Future:
        """`function()` on one of the threads, for code that is not async: wait on .result()."""
        future = concurrent.futures.Future()
        self._start()
        self._calls.put((None, future, function, ()))
        return future

    def _start(self) -> None:
        if len(self._threads) == self.count:
            return
        with self._starting:
            while len(self._threads) < self.count:
                name = f"{self._name}_{len(self._threads)}"
                thread = threading.Thread(target=self._serve, name=name, daemon=True)
                thread.start()
                self._threads.append(thread)

    def _serve(self) -> None:
        while True:
            loop, future, function, args = self._calls.get()
            if loop is None:
                _run_submitted(future, function)
            elif not future.cancelled():  # else its caller gave up before it began
                _run_called(loop, future, function, args)


def _run_called(loop, future: asyncio.Future, function, args) -> None:
    try:
        result, error = function(*args), None
    except BaseException as exc:  # handed to the caller, as the pool does
        result, error = None, exc
    with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
        loop.call_soon_threadsafe(_settle, future, result, error)


def _settle(future: asyncio.Future, result, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def _run_submitted(future: concurrent.futures.Future, function) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        future.set_result(function())
    except BaseException as exc:
        future.set_exception(exc)
