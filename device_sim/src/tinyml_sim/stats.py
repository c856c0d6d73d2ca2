"""Process-wide latency samples for the periodic stats line and the metrics endpoint."""

from __future__ import annotations

from array import array

import numpy as np


class Samples:
    """Samples of one quantity since the last snapshot (bounded: oldest half dropped)."""

    __slots__ = ("_data", "_limit")

    def __init__(self, limit: int = 1_000_000) -> None:
        self._data = array("d")
        self._limit = limit

    def add(self, value: float) -> None:
        if len(self._data) >= self._limit:
            del self._data[: self._limit // 2]
        self._data.append(value)

    def extend(self, values: list[float]) -> None:
        """Many samples at once (a tick's worth)."""
        data = self._data
        data.extend(values)
        if len(data) > self._limit:
            del data[: len(data) - self._limit // 2]

    def take(self) -> tuple[int, float, float]:
        """(count, p50, p99) of the samples so far, then start over."""
        data, self._data = self._data, array("d")
        if not data:
            return 0, 0.0, 0.0
        p50, p99 = np.percentile(np.frombuffer(data, dtype=np.float64), [50, 99])
        return len(data), float(p50), float(p99)


class FleetStats:
    """Latency distributions shared by every device of the process."""

    def __init__(self) -> None:
        self.inference_us = Samples()
        self.ack_lag_s = Samples()  # inference due -> PUBACK received
        self.tick_lag_s = Samples()  # inference due -> timer actually fired
