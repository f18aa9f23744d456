"""The database threads the streaming path hands its calls to (chat/dbthreads.py)."""

import asyncio
import threading

import pytest

from chat.dbthreads import DatabaseThreads


def test_it_runs_a_call_on_its_thread_and_gives_back_the_result():
    threads = DatabaseThreads(1, "test-db")
    name = asyncio.run(threads.call(lambda x: (threading.current_thread().name, x + 1), 41))
    assert name == ("test-db_0", 42)


def test_it_raises_the_calls_exception_in_the_caller():
    threads = DatabaseThreads(2, "test-db")

    def fail():
        raise LookupError("no such row")

    with pytest.raises(LookupError, match="no such row"):
        asyncio.run(threads.call(fail))


def test_one_thread_runs_calls_in_the_order_they_came():
    threads, seen = DatabaseThreads(1, "test-db"), []

    async def main():
        await asyncio.gather(*(threads.call(seen.append, n) for n in range(200)))

    asyncio.run(main())
    assert seen == list(range(200))


def test_a_call_cancelled_before_it_began_never_runs():
    threads, release, ran = DatabaseThreads(1, "test-db"), threading.Event(), []

    async def main():
        busy = asyncio.ensure_future(threads.call(release.wait, 10))
        waiting = asyncio.ensure_future(threads.call(ran.append, "late"))
        await asyncio.sleep(0)  # both are queued
        waiting.cancel()
        release.set()
        await busy
        await threads.call(ran.append, "next")  # runs after the cancelled one's turn

    asyncio.run(main())
    assert ran == ["next"]


def test_code_that_is_not_async_can_wait_for_a_call():
    threads = DatabaseThreads(1, "test-db")
    assert threads.submit(lambda: threading.current_thread().name).result(5) == "test-db_0"
