from __future__ import annotations

import random

import pytest
from tinyml_sim.policy import Backoff, OfflineBuffer, PublishPolicy


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    backoff = Backoff(random.Random(1), base_s=1.0, cap_s=8.0)
    delays = [backoff.next_delay() for _ in range(8)]
    for attempt, delay in enumerate(delays):
        step = min(8.0, 2.0**attempt)
        assert step / 2 <= delay <= step
    assert len(set(delays)) == len(delays)  # jittered


def test_backoff_is_seeded_and_resets() -> None:
    a, b = Backoff(random.Random(7)), Backoff(random.Random(7))
    assert [a.next_delay() for _ in range(5)] == [b.next_delay() for _ in range(5)]
    a.reset()
    assert a.next_delay() <= 1.0


def test_backoff_jitter_spreads_a_fleet() -> None:
    first = [Backoff(random.Random(seed)).next_delay() for seed in range(200)]
    assert max(first) - min(first) > 0.4


def test_buffer_drops_oldest_and_counts() -> None:
    buffer: OfflineBuffer[int] = OfflineBuffer(3)
    for i in range(5):
        buffer.push(i)
    assert len(buffer) == 3
    assert buffer.dropped == 2
    assert [buffer.pop() for _ in range(3)] == [2, 3, 4]
    with pytest.raises(IndexError):
        buffer.pop()


def test_buffer_needs_room() -> None:
    with pytest.raises(ValueError, match="capacity"):
        OfflineBuffer(0)


def test_publish_on_change_or_heartbeat_never_faster_than_min() -> None:
    policy = PublishPolicy(min_interval_s=2.0, max_interval_s=10.0)
    assert policy.decide(0, 0.0)  # first inference
    assert not policy.decide(0, 1.0)  # same label
    assert not policy.decide(1, 1.5)  # change, but within the minimum interval
    assert policy.decide(1, 2.5)  # the change goes out once allowed
    assert not policy.decide(1, 9.0)
    assert policy.decide(1, 12.5)  # heartbeat
