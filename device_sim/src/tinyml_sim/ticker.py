"""One clock for every device of the process: due windows are synthesized, quantized and
classified in batches, then each device runs its own publish policy.

A timer per device costs a heap operation and a callback per window; at 10,000 devices the
per-window numpy calls cost more than the signal itself. Devices due in the same 10 ms slot
are handled together instead, at the slot's end (a window is still one device's, from its
own generator, and is never classified before its last sample is due).
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from typing import Protocol

from tinyml_sim.models import Classifier, Inference
from tinyml_sim.quant import quantize
from tinyml_sim.stats import FleetStats
from tinyml_sim.synth import FloatArray, SensorSynth

SLOT_S = 0.01


class Sampled(Protocol):
    """A device as the ticker sees it."""

    synth: SensorSynth
    classifier: Classifier
    tick_token: int
    started: float  # loop time at power-on; windows are timed in device uptime

    def on_result(self, window: FloatArray, result: Inference, due: float, now: float) -> None: ...


class Ticker:
    def __init__(self, loop: asyncio.AbstractEventLoop, stats: FleetStats) -> None:
        self._loop = loop
        self._stats = stats
        self._wheel: defaultdict[int, list[tuple[int, float, Sampled]]] = defaultdict(list)
        self._next_slot = math.floor(loop.time() / SLOT_S)
        self._handle: asyncio.TimerHandle | None = None

    def schedule(self, device: Sampled, due: float) -> None:
        """Window at loop time `due`; replaces any earlier schedule of this device."""
        device.tick_token += 1
        slot = max(math.ceil(due / SLOT_S), self._next_slot)
        self._wheel[slot].append((device.tick_token, due, device))

    @staticmethod
    def cancel(device: Sampled) -> None:
        device.tick_token += 1

    def start(self) -> None:
        self._handle = self._loop.call_at((self._next_slot + 1) * SLOT_S, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()

    def _tick(self) -> None:
        now = self._loop.time()
        current = math.floor(now / SLOT_S)
        due: list[tuple[float, Sampled]] = []
        for slot in range(self._next_slot, current + 1):
            for token, when, device in self._wheel.pop(slot, ()):
                if token == device.tick_token:
                    due.append((when, device))
        self._next_slot = current + 1
        self._run(due, now)
        # Sleep to the next slot that holds work (the wheel is sparse when rates are low).
        upcoming = min(self._wheel, default=self._next_slot)
        self._handle = self._loop.call_at(max(upcoming, self._next_slot) * SLOT_S, self._tick)

    def _run(self, due: list[tuple[float, Sampled]], now: float) -> None:
        groups: defaultdict[tuple[int, int], list[tuple[float, Sampled]]] = defaultdict(list)
        for when, device in due:
            groups[id(device.synth.physics), id(device.classifier)].append((when, device))
        for members in groups.values():
            devices = [d for _, d in members]
            times = [when - d.started for when, d in members]
            windows, _ = SensorSynth.windows([d.synth for d in devices], times)
            classifier = devices[0].classifier
            quantized = quantize(windows, *classifier.input_quantization)
            results = classifier.classify_batch(quantized)
            self._stats.tick_lag_s.extend([now - when for when, _ in members])
            self._stats.inference_us.extend([result.inference_us for result in results])
            for window, result, (when, device) in zip(windows, results, members, strict=True):
                device.on_result(window, result, when, now)
