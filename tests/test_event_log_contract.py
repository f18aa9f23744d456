"""The event log's contract, held by both backends: in memory, and in real Redis."""

import asyncio
import contextlib
import itertools
import os

import pytest

from chat.events import Event
from chat.runs.eventlog.base import QUEUED
from chat.runs.eventlog.memory import MemoryEventLog
from chat.runs.eventlog.redis import RedisEventLog
from chat.runs.follow import follow

# Message ids of this run alone, so nothing stored in a shared Redis gets in the way.
_ids = itertools.count(os.getpid() * 1000)


@pytest.fixture(params=["memory", "redis"])
def log(request):
    if request.param == "memory":
        return MemoryEventLog()
    return RedisEventLog(request.getfixturevalue("redis_url"))


@pytest.fixture
def mid():
    return next(_ids)


def start(mid):
    return Event(mid, 0, "start", {"message_id": mid})


def delta(mid, seq, text):
    return Event(mid, seq, "delta", {"text": text})


def done(mid, seq):
    return Event(mid, seq, "done", {"message_id": mid, "status": "complete"})


async def write(log, *events):
    for event in events:
        log.append(event)
    await log.flush()


async def test_it_reads_back_what_was_appended_in_order(log, mid):
    events = [start(mid), delta(mid, 1, "Hel"), delta(mid, 2, "lo"), done(mid, 3)]
    await write(log, *events)
    assert await log.read(mid, -1, block=0) == events
    assert await log.read(mid, 1, block=0) == events[2:]
    assert await log.read(mid, 3, block=0) == []


async def test_a_flush_waits_for_the_events_already_on_their_way(log, mid):
    log.append(start(mid))
    await asyncio.sleep(0)  # a background writer may take them first
    await log.flush()
    assert await log.read(mid, -1, block=0) == [start(mid)]


async def test_it_has_no_log_for_a_reply_nobody_wrote(log, mid):
    assert await log.read(mid, -1, block=0) is None
    assert not await log.writing(mid)


async def test_a_waiting_reader_gets_the_next_event_when_it_is_appended(log, mid):
    await write(log, start(mid))
    waiting = asyncio.create_task(log.read(mid, 0, block=10))
    await asyncio.sleep(0.05)
    await write(log, delta(mid, 1, "Hi"))
    assert await waiting == [delta(mid, 1, "Hi")]


async def test_a_reader_with_nothing_new_gets_nothing_once_it_stops_waiting(log, mid):
    await write(log, start(mid))
    assert await log.read(mid, 0, block=0.1) == []


async def test_the_writer_holds_the_lease_until_the_end(log, mid):
    await log.pulse([mid])
    await write(log, start(mid))
    assert await log.writing(mid)
    await write(log, done(mid, 1))
    assert not await log.writing(mid)


async def test_a_stop_reaches_the_writer_on_its_pulse(log, mid):
    await log.pulse([mid])
    await write(log, start(mid))
    assert not (await log.pulse([mid]))[0].stop
    assert await log.stop(mid)
    assert (await log.pulse([mid], beat=False))[0].stop


async def test_a_stop_for_a_reply_nobody_writes_says_so(log, mid):
    await write(log, start(mid), done(mid, 1))
    assert not await log.stop(mid)


async def test_listeners_are_counted_and_a_brief_one_is_still_noticed(log, mid):
    await log.pulse([mid])
    await write(log, start(mid))
    await log.listen(mid, "a")
    await log.listen(mid, "b")
    assert await log.listeners(mid) == 2
    assert (await log.pulse([mid]))[0].listeners == 2
    await log.leave(mid, "a")
    assert await log.listeners(mid) == 1
    await log.leave(mid, "b")
    gone = (await log.pulse([mid]))[0]
    assert (gone.listeners, gone.listened) == (0, True)
    assert not (await log.pulse([mid]))[0].listened


async def test_a_new_replys_first_beat_keeps_the_other_replies_listeners_between_beats(log, mid):
    other = next(_ids)
    await log.pulse([mid])
    await write(log, start(mid))
    await log.listen(mid, "a")
    assert (await log.pulse([mid]))[0].listeners == 1
    await log.pulse([other])  # a reply started since: its lease first, alone
    assert (await log.pulse([mid, other], beat=False))[0].listeners == 1


async def test_a_follower_listens_from_the_moment_it_is_made_not_from_its_first_read(log, mid):
    # A response that a busy process takes long to begin sending still keeps its reply.
    await log.pulse([mid])
    await write(log, start(mid), delta(mid, 1, "Hi"))
    events = await follow(log, mid, -1, writing_here=lambda: True)
    assert await log.listeners(mid) == 1
    assert (await anext(events)).name == "start"
    await events.aclose()
    assert await log.listeners(mid) == 0


async def test_a_follower_whose_task_is_being_cancelled_leaves_at_its_next_read(log, mid):
    # Django cancels a stream's task when its client hangs up. Were that cancellation lost
    # below the reader, the task would go on 'cancelling', and the reader must still end
    # and leave, or the abandoned reply is generated to its end.
    await log.pulse([mid])
    await write(log, start(mid))
    events = await follow(log, mid, -1, writing_here=lambda: True)
    read, swallowed = [], asyncio.Event()

    async def stream():
        async with contextlib.aclosing(events):
            async for event in events:
                read.append(event.name)
                if event.name == "start":
                    asyncio.current_task().cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        # Nothing else ends this wait: the cancellation, lost on its way.
                        await asyncio.get_running_loop().create_future()
                    swallowed.set()

    task = asyncio.create_task(stream())
    await swallowed.wait()
    await write(log, delta(mid, 1, "Hi"), done(mid, 2))
    with pytest.raises(asyncio.CancelledError):
        await task
    assert read == ["start"]
    assert await log.listeners(mid) == 0


async def test_a_writerless_log_is_ended_once(log, mid):
    await write(log, start(mid), delta(mid, 1, "Hal"))
    first = Event(mid, 2, "error", {"message_id": mid, "code": "interrupted", "message": "x"})
    assert await log.end(first)
    assert not await log.end(Event(mid, 2, "done", {"message_id": mid}))
    assert (await log.read(mid, 1, block=0)) == [first]


async def test_a_late_writer_cannot_add_to_a_log_a_reader_ended(log, mid):
    await write(log, start(mid), delta(mid, 1, "Hal"))
    assert await log.end(Event(mid, 2, "error", {"message_id": mid, "code": "interrupted"}))
    await write(log, delta(mid, 3, "lo"), done(mid, 4))  # the writer, back from a stall
    assert [e.name for e in await log.read(mid, -1, block=0)] == ["start", "delta", "error"]


async def test_an_ended_log_is_gone_after_its_ttl(log, mid, settings):
    settings.CHAT_EVENT_LOG_TTL_SECONDS = 0
    await write(log, start(mid), done(mid, 1))
    for _ in range(100):
        if await log.read(mid, -1, block=0) is None:
            return
        await asyncio.sleep(0.05)
    pytest.fail("the ended log was still there")


async def test_a_queued_reply_is_taken_from_the_queue_once(log, mid):
    assert await log.lease(mid, 30, holder=QUEUED)
    await write(log, start(mid))
    assert await log.writing(mid)
    assert await log.lease(mid, 6, replacing=QUEUED)
    assert not await log.lease(mid, 6, holder="another worker", replacing=QUEUED)
    assert await log.writing(mid)


async def test_a_lease_is_not_taken_from_its_holder_nor_for_an_unknown_reply(log, mid):
    assert not await log.lease(mid, 6, replacing=QUEUED)
    await log.pulse([mid])
    await write(log, start(mid))
    assert not await log.lease(mid, 6, holder="another")


async def test_an_ended_log_cannot_be_leased_again(log, mid):
    await write(log, start(mid), done(mid, 1))
    assert not await log.lease(mid, 6)
    assert not await log.writing(mid)


async def test_a_thousand_replies_taking_their_leases_at_once_all_get_them(log):
    # A burst of starts on one process: more commands at once than connections in a pool.
    mids = [next(_ids) for _ in range(1000)]
    assert all(await asyncio.gather(*(log.lease(m, 30, holder=QUEUED) for m in mids)))
