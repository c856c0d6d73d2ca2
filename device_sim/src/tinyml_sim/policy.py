"""Firmware-like policies: publish on change or heartbeat, reconnect backoff, offline buffer."""

from __future__ import annotations

import random
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class PublishPolicy:
    """Send an inference when its label differs from the last one sent, or as a heartbeat
    every `max_interval_s`; never more often than every `min_interval_s`."""

    __slots__ = ("_last_label", "_last_s", "max_interval_s", "min_interval_s")

    def __init__(self, min_interval_s: float, max_interval_s: float) -> None:
        self.min_interval_s = min_interval_s
        self.max_interval_s = max_interval_s
        self._last_label = -1
        self._last_s = float("-inf")

    def decide(self, label: int, now_s: float) -> bool:
        elapsed = now_s - self._last_s
        # A small tolerance keeps a heartbeat on its own tick despite timer jitter.
        if elapsed + 1e-3 < self.min_interval_s:
            return False
        if label == self._last_label and elapsed + 1e-3 < self.max_interval_s:
            return False
        self._last_label = label
        self._last_s = now_s
        return True


class Backoff:
    """Exponential backoff with "equal jitter": half the step is fixed, half random, so a
    fleet that lost its broker at once spreads its reconnects without ever retrying hot."""

    __slots__ = ("_rng", "attempt", "base_s", "cap_s")

    def __init__(self, rng: random.Random, base_s: float = 1.0, cap_s: float = 60.0) -> None:
        self._rng = rng
        self.base_s = base_s
        self.cap_s = cap_s
        self.attempt = 0

    def next_delay(self) -> float:
        step = min(self.cap_s, self.base_s * 2.0 ** min(self.attempt, 30))
        self.attempt += 1
        return step / 2.0 + self._rng.uniform(0.0, step / 2.0)

    def reset(self) -> None:
        self.attempt = 0


class OfflineBuffer(Generic[T]):
    """A bounded FIFO that drops its oldest entry when full and counts the drops."""

    __slots__ = ("_items", "capacity", "dropped")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.dropped = 0
        self._items: deque[T] = deque()

    def push(self, item: T) -> None:
        if len(self._items) >= self.capacity:
            self._items.popleft()
            self.dropped += 1
        self._items.append(item)

    def pop(self) -> T:
        return self._items.popleft()

    def __len__(self) -> int:
        return len(self._items)
