"""The in-process rate-limit storage under the library's own moving-window strategy.

The clock is the one edge replaced here, so an hour can pass in a test.
"""

from __future__ import annotations

import threading

import pytest
from limits import RateLimitItemPerHour
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

from mcp_server.auth import loop_storage
from mcp_server.auth.loop_storage import LoopMemoryStorage


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(loop_storage, "time", fake)
    return fake


def test_a_moving_window_admits_n_per_hour_and_frees_slots_as_hits_age(clock: Clock) -> None:
    limiter = MovingWindowRateLimiter(LoopMemoryStorage())
    item = RateLimitItemPerHour(3)
    first_hit = clock.now
    assert [limiter.hit(item, "u") for _ in range(4)] == [True, True, True, False]
    clock.now += 1800
    assert limiter.hit(item, "u") is False  # all three are still inside the last hour
    stats = limiter.get_window_stats(item, "u")
    assert stats.remaining == 0 and stats.reset_time == first_hit + 3600  # when the oldest hit leaves
    clock.now = first_hit + 3600.5
    assert limiter.hit(item, "u") is True  # the oldest three aged out together
    assert limiter.get_window_stats(item, "u").remaining == 2
    assert limiter.hit(item, "other") is True  # keys are separate budgets


def test_a_hit_costing_more_than_is_left_is_refused_whole(clock: Clock) -> None:
    limiter = MovingWindowRateLimiter(LoopMemoryStorage())
    item = RateLimitItemPerHour(5)
    assert limiter.hit(item, "u", cost=4) is True
    assert limiter.hit(item, "u", cost=2) is False
    assert limiter.get_window_stats(item, "u").remaining == 1
    assert limiter.hit(item, "u", cost=6) is False  # more than the whole limit


def test_idle_keys_are_swept_so_memory_follows_active_users(clock: Clock) -> None:
    storage = LoopMemoryStorage(sweep_interval=60)
    limiter = MovingWindowRateLimiter(storage)
    item = RateLimitItemPerHour(10)
    for user in range(100):
        limiter.hit(item, f"user{user}")
    assert len(storage) == 100
    clock.now += 3601
    limiter.hit(item, "active")
    assert len(storage) == 1


def test_fixed_window_counts_expire_with_their_window(clock: Clock) -> None:
    limiter = FixedWindowRateLimiter(LoopMemoryStorage())
    item = RateLimitItemPerHour(2)
    assert [limiter.hit(item, "u") for _ in range(3)] == [True, True, False]
    clock.now += 3601
    assert limiter.hit(item, "u") is True


def test_counting_starts_no_threads() -> None:
    before = threading.active_count()
    limiter = MovingWindowRateLimiter(LoopMemoryStorage())
    item = RateLimitItemPerHour(1_000_000)
    for _ in range(5000):
        limiter.hit(item, "u")
        limiter.get_window_stats(item, "u")
    assert threading.active_count() == before


def test_one_step_hit_agrees_with_the_strategy_it_replaces(clock: Clock) -> None:
    """``hit`` (what the gateway's limiter calls) counts and reports exactly as ``acquire_entry``
    then ``get_moving_window`` do, over a limit, and as the oldest hit ages out of the hour."""
    one_step, two_step = LoopMemoryStorage(), LoopMemoryStorage()
    answers = []
    for step in range(6):
        allowed, start, count = one_step.hit("k", 3, 3600)
        expected = (two_step.acquire_entry("k", 3, 3600), *two_step.get_moving_window("k", 3, 3600))
        assert (allowed, start, count) == expected
        answers.append(allowed)
        clock.now += 1000 if step == 3 else 1
    assert answers == [True, True, True, False, False, False]
    clock.now += 3600 - 1000
    assert one_step.hit("k", 3, 3600)[0] is True  # the first hits left the window: a slot is free
