"""One contract for the limiters: the in-process one and the Redis one behave the same."""

from __future__ import annotations

import asyncio
import itertools
import random
import time

import pytest

from chat.errors import LimitExceeded
from chat.limits.backend import MemoryLimiter
from chat.limits.shared import RedisLimiter

# Fresh user ids per test, so that Redis keys of earlier tests (and runs) never meet.
_user_ids = itertools.count(random.randrange(10**9, 2 * 10**9), 10)


@pytest.fixture(params=["memory", "redis"])
async def make_limiter(request):
    """A factory of limiters of one kind; Redis ones are closed at the end."""
    made = []

    def make(window: float = 60, slot_ttl: float = 15):
        if request.param == "memory":
            return MemoryLimiter(window=window, slot_ttl=slot_ttl)
        url = request.getfixturevalue("redis_url")
        made.append(RedisLimiter(url, window=window, slot_ttl=slot_ttl))
        return made[-1]

    yield make
    for limiter in made:
        await limiter.client.aclose()


@pytest.fixture
def user() -> int:
    return next(_user_ids)


async def refused(limiter, user, max_concurrent=100, per_window=100) -> LimitExceeded:
    with pytest.raises(LimitExceeded) as raised:
        await limiter.acquire(user, max_concurrent, per_window)
    return raised.value


async def eventually_acquire(limiter, user, max_concurrent, per_window, timeout=10.0):
    """Poll until a slot is granted; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await limiter.acquire(user, max_concurrent, per_window)
        except LimitExceeded:
            assert time.monotonic() < deadline, "the limiter never granted a slot again"
            await asyncio.sleep(0.05)


async def test_it_grants_slots_up_to_the_concurrent_limit(make_limiter, user):
    limiter = make_limiter()
    for _ in range(3):
        await limiter.acquire(user, 3, 100)
    error = await refused(limiter, user, max_concurrent=3)
    assert (error.status, error.code) == (429, "too_many_replies")
    assert error.retry_after >= 1


async def test_a_released_slot_can_be_taken_again(make_limiter, user):
    limiter = make_limiter()
    first = await limiter.acquire(user, 1, 100)
    await refused(limiter, user, max_concurrent=1)
    await limiter.release(first)
    await limiter.acquire(user, 1, 100)


async def test_it_refuses_starts_beyond_the_window_until_the_oldest_leaves_it(make_limiter, user):
    limiter = make_limiter(window=1.5)
    for _ in range(2):
        await limiter.release(await limiter.acquire(user, 100, 2))
    error = await refused(limiter, user, per_window=2)
    assert (error.status, error.code) == (429, "rate_limited")
    assert 1 <= error.retry_after <= 2
    await eventually_acquire(limiter, user, 100, 2)


async def test_a_finished_reply_still_counts_as_a_start_but_a_refunded_one_does_not(
    make_limiter, user
):
    limiter = make_limiter()
    await limiter.release(await limiter.acquire(user, 100, 2), refund=True)
    await limiter.release(await limiter.acquire(user, 100, 2), refund=True)
    await limiter.release(await limiter.acquire(user, 100, 2))
    await limiter.release(await limiter.acquire(user, 100, 2))
    assert (await refused(limiter, user, per_window=2)).code == "rate_limited"


async def test_too_many_at_once_is_said_before_too_many_per_minute(make_limiter, user):
    limiter = make_limiter()
    await limiter.acquire(user, 1, 1)
    assert (await refused(limiter, user, max_concurrent=1, per_window=1)).code == (
        "too_many_replies"
    )


async def test_a_slot_nobody_refreshes_expires(make_limiter, user):
    limiter = make_limiter(slot_ttl=0.5)
    await limiter.acquire(user, 1, 100)
    await refused(limiter, user, max_concurrent=1)
    await eventually_acquire(limiter, user, 1, 100)


async def test_a_refreshed_slot_outlives_its_ttl(make_limiter, user):
    ttl = 0.6
    limiter = make_limiter(slot_ttl=ttl)
    slot = await limiter.acquire(user, 1, 100)
    until = time.monotonic() + 3 * ttl
    while time.monotonic() < until:
        refreshed = time.monotonic()
        await limiter.refresh([slot])
        try:
            slot = await limiter.acquire(user, 1, 100)
        except LimitExceeded:
            continue  # still held, as it must be
        # Granted: the refreshed slot expired, which only a stall longer than its TTL
        # (a loaded machine) excuses; then carry on with the new slot.
        assert time.monotonic() - refreshed > ttl, "a slot refreshed within its TTL expired"


async def test_an_expired_slot_is_not_revived_by_a_refresh(make_limiter, user):
    limiter = make_limiter(slot_ttl=0.4)
    old = await limiter.acquire(user, 1, 100)
    new = await eventually_acquire(limiter, user, 1, 100)
    await limiter.refresh([old, new])
    await limiter.release(new)
    await limiter.acquire(user, 1, 100)


async def test_each_user_has_limits_of_their_own(make_limiter, user):
    limiter = make_limiter()
    other = next(_user_ids)
    await limiter.acquire(user, 1, 1)
    await limiter.acquire(other, 1, 1)
    await refused(limiter, user, max_concurrent=1, per_window=1)


@pytest.mark.parametrize(
    "max_concurrent, per_window, granted, code",
    [(100, 10, 10, "rate_limited"), (3, 100, 3, "too_many_replies")],
)
async def test_forty_simultaneous_requests_get_exactly_the_limit(
    make_limiter, user, max_concurrent, per_window, granted, code
):
    limiter = make_limiter()
    results = await asyncio.gather(
        *(limiter.acquire(user, max_concurrent, per_window) for _ in range(40)),
        return_exceptions=True,
    )
    slots = [r for r in results if not isinstance(r, BaseException)]
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(slots) == granted
    assert len({slot.id for slot in slots}) == granted
    assert {type(e) for e in errors} == {LimitExceeded}
    assert {e.code for e in errors} == {code}


async def test_a_thousand_users_starting_at_once_all_get_a_slot(make_limiter):
    # A burst of starts on one process: more commands at once than connections in a pool.
    limiter = make_limiter()
    users = [next(_user_ids) for _ in range(1000)]
    slots = await asyncio.gather(*(limiter.acquire(u, 3, 100) for u in users))
    assert len(slots) == 1000
