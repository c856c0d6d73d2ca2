"""Seeded, physically plausible sensor synthesizers.

The same physics renders the training set (files/models/train.py), the held-out set the tests
regenerate, and the windows the virtual devices classify, so a model card's accuracy is the
accuracy the simulated fleet sees before faults and drift are injected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float32]
TWO_PI = 2.0 * math.pi
HALF_PI = 0.5 * math.pi


@dataclass(frozen=True, slots=True)
class FaultSchedule:
    """A fault that appears at `start_s` (device uptime) and grows linearly over `ramp_s`."""

    type: str
    start_s: float
    ramp_s: float = 0.0
    severity: float = 1.0

    def level(self, t_s: float) -> float:
        if t_s < self.start_s:
            return 0.0
        if self.ramp_s <= 0.0:
            return self.severity
        return self.severity * min(1.0, (t_s - self.start_s) / self.ramp_s)


@dataclass(frozen=True, slots=True)
class DriftSchedule:
    """Slow sensor degradation from `start_s` on: offset (sensor units), gain and extra noise."""

    start_s: float = 0.0
    offset_per_h: float = 0.0
    gain_per_h: float = 0.0
    noise_per_h: float = 0.0

    def at(self, t_s: float) -> tuple[float, float, float]:
        hours = max(0.0, t_s - self.start_s) / 3600.0
        return self.offset_per_h * hours, 1.0 + self.gain_per_h * hours, self.noise_per_h * hours


class Physics(Protocol):
    """One device class's sensor physics."""

    name: str
    labels: tuple[str, ...]
    channels: tuple[str, ...]
    units: tuple[str, ...]
    odr_hz: float
    window: int
    fault_types: tuple[str, ...]
    draws: int  # uniform random numbers one window consumes from its device's generator

    def machine(self, rng: np.random.Generator) -> NDArray[np.float64]:
        """Per-device constants (mounting, speed, noise floor, precomputed tables...)."""
        ...

    def render_batch(
        self,
        draws: NDArray[np.float64],
        machines: NDArray[np.float64],
        labels: NDArray[np.int64],
        severities: NDArray[np.float64],
    ) -> NDArray[np.float64]:
        """Windows (batch, window, channels) in physical units, one per row of the inputs;
        `draws` holds each window's `draws` uniform numbers from its device's generator."""
        ...


def render(
    physics: Physics,
    rng: np.random.Generator,
    machine: NDArray[np.float64],
    label: int,
    severity: float,
) -> FloatArray:
    """One window (window, channels): a batch of one."""
    batch = physics.render_batch(
        rng.random((1, physics.draws)), machine[None], np.array([label]), np.array([severity])
    )
    window: FloatArray = batch[0].astype(np.float32)
    return window


def _tilt(rng: np.random.Generator, max_rad: float) -> NDArray[np.float64]:
    """A random small rotation (mounting tolerance), as a 3x3 matrix."""
    a, b, c = rng.uniform(-max_rad, max_rad, 3)
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    rotation: NDArray[np.float64] = rx @ ry @ rz
    return rotation


def _noise(draws: NDArray[np.float64], rows: int, cols: int) -> NDArray[np.float64]:
    """Unit Gaussian noise, (batch, rows, cols): slices of a shared bank at offsets given by
    one uniform draw per window. Drawing fresh normals per window would cost more than all
    the rest of a window's synthesis."""
    size = rows * cols
    starts = (draws * (_NOISE.size - size)).astype(np.int64)
    # Rows of a strided view: one contiguous copy per window instead of a gather per sample.
    noise: NDArray[np.float64] = _noise_rows(size)[starts]
    return noise.reshape(-1, rows, cols)


_NOISE = np.random.default_rng(0x5EED).standard_normal(1 << 18)
_NOISE_ROWS: dict[int, NDArray[np.float64]] = {}


def _noise_rows(size: int) -> NDArray[np.float64]:
    """Every `size`-sample slice of the bank, as a read-only view (no copy)."""
    view = _NOISE_ROWS.get(size)
    if view is None:
        view = _NOISE_ROWS[size] = np.lib.stride_tricks.sliding_window_view(_NOISE, size)
    return view


class VibrationPhysics:
    """3-axis accelerometer (g) on a rotating machine, 1 kHz, 128-sample windows.

    Normal: gravity, a small 1x running-speed component and broadband noise. Imbalance: a
    strong 1x radial component (x and y in quadrature). Misalignment: 2x radial plus strong
    axial (z) 1x/2x. Bearing fault: a structural resonance excited once per ball pass (BPFO,
    3-4.5x running speed), seen as periodic ringing bursts.
    """

    name: str = "vibration"
    labels: tuple[str, ...] = ("normal", "imbalance", "misalignment", "bearing_fault")
    channels: tuple[str, ...] = ("ax", "ay", "az")
    units: tuple[str, ...] = ("g", "g", "g")
    odr_hz: float = 1000.0
    window: int = 128
    fault_types: tuple[str, ...] = ("imbalance", "misalignment", "bearing_fault")
    draws: int = 8
    _PARAMS = 8  # scalars before the per-machine tables in machine()

    def __init__(self) -> None:
        self._t = np.arange(self.window, dtype=np.float64) / self.odr_hz

    def machine(self, rng: np.random.Generator) -> NDArray[np.float64]:
        gravity = _tilt(rng, math.radians(10)) @ np.array([0.0, 0.0, 1.0])
        f_rot = rng.uniform(20.0, 35.0)
        params = [
            f_rot,  # 0 running speed, Hz (1200-2100 rpm, speed-controlled)
            rng.uniform(0.01, 0.04),  # 1 residual 1x amplitude, g
            rng.uniform(0.01, 0.03),  # 2 noise floor, g rms
            rng.uniform(250.0, 420.0),  # 3 housing resonance, Hz
            rng.uniform(3.0, 4.5),  # 4 BPFO / running speed
            *gravity,  # 5..7 gravity in sensor axes
        ]
        # sin/cos of 1x and 2x over a window, and the resonance's ringing: each window then
        # only rotates these by its shaft phase (angle addition) instead of evaluating sines.
        w = TWO_PI * f_rot * self._t
        ringing = np.sin(TWO_PI * params[3] * self._t)
        tables = [np.sin(w), np.cos(w), np.sin(2 * w), np.cos(2 * w), ringing, w]
        return np.concatenate([params, *tables])

    def render_batch(
        self,
        draws: NDArray[np.float64],
        machines: NDArray[np.float64],
        labels: NDArray[np.int64],
        severities: NDArray[np.float64],
    ) -> NDArray[np.float64]:
        # The shaft phase at a window's start is random (a window is a snapshot): rotating
        # the machine's precomputed sin/cos tables by it (angle addition) replaces sines.
        n, k = self.window, self._PARAMS
        r = draws
        p, q, pa = TWO_PI * r[:, 0], TWO_PI * (2 * r[:, 0] + r[:, 1]), TWO_PI * (r[:, 0] + r[:, 2])
        amps = (0.25 + 0.35 * r[:, 4:7]) * severities[:, None]
        resid = machines[:, 1]
        one_x = resid + np.where(labels == 1, amps[:, 0], 0.0)
        two_x = resid / 3.0 + np.where(labels == 2, amps[:, 1] * 0.8, 0.0)
        axial = np.where(labels == 2, amps[:, 1], 0.0)
        cp, sp, cq, sq = np.cos(p), np.sin(p), np.cos(q), np.sin(q)
        # x = 1x sin + 2x sin, y = the same in quadrature, z = axial 1x and 2x.
        mix = np.stack(
            [
                one_x * cp,
                -one_x * sp,
                0.7 * axial * np.cos(pa),
                one_x * sp,
                one_x * cp,
                0.7 * axial * np.sin(pa),
                two_x * cq,
                -two_x * sq,
                axial * cq,
                two_x * sq,
                two_x * cq,
                axial * sq,
            ],
            axis=1,
        ).reshape(-1, 4, 3)
        tables = machines[:, k : k + 4 * n].reshape(-1, 4, n)
        out: NDArray[np.float64] = np.matmul(tables.transpose(0, 2, 1), mix)
        bearing = np.flatnonzero(labels == 3)
        if bearing.size:
            m, rb = machines[bearing], r[bearing]
            theta = m[:, k + 5 * n : k + 6 * n] + p[bearing, None]  # shaft angle
            # Impacts once per ball pass excite the resonance: sharp periodic bursts.
            envelope = (0.5 + 0.5 * np.cos(m[:, 4:5] * theta + TWO_PI * rb[:, 3:4])) ** 8
            burst = amps[bearing, 2:3] * envelope * m[:, k + 4 * n : k + 5 * n]
            out[bearing] += burst[:, :, None] * np.array([0.6, 0.4, 0.8])
        out += machines[:, None, 5:8]
        out += _noise(r[:, 7], n, 3) * machines[:, 2, None, None]
        return out


class GesturePhysics:
    """6-axis IMU on a wrist (accelerometer g, gyroscope rad/s), 100 Hz, 64-sample windows.

    A swipe lasts 0.25-0.45 s: the hand accelerates along y then decelerates (one sine period)
    while the wrist rolls about z; left and right are mirror images. Idle is gravity, tremor
    and slow, small movements. Gyro rates use rad/s so one int8 scale suits both sensors.
    """

    name: str = "gesture"
    labels: tuple[str, ...] = ("idle", "left", "right")
    channels: tuple[str, ...] = ("ax", "ay", "az", "gx", "gy", "gz")
    units: tuple[str, ...] = ("g", "g", "g", "rad/s", "rad/s", "rad/s")
    odr_hz: float = 100.0
    window: int = 64
    fault_types: tuple[str, ...] = ("noise", "stuck_axis")
    draws: int = 7

    def __init__(self) -> None:
        self._t = np.arange(self.window, dtype=np.float64) / self.odr_hz

    def machine(self, rng: np.random.Generator) -> NDArray[np.float64]:
        rot = _tilt(rng, math.radians(20))
        both = np.zeros((6, 6))
        both[:3, :3] = both[3:, 3:] = rot.T  # the wrist's orientation, for both sensors
        sigma_acc, sigma_gyro = rng.uniform(0.01, 0.03), rng.uniform(0.02, 0.06)
        return np.concatenate(
            [
                [sigma_acc] * 3 + [sigma_gyro] * 3,  # 0..5 noise rms per channel
                both.ravel(),  # 6..41 rotation (transposed, block-diagonal)
                rot @ np.array([0.0, 0.0, 1.0]),  # 42..44 gravity in sensor axes
            ]
        )

    def render_batch(
        self,
        draws: NDArray[np.float64],
        machines: NDArray[np.float64],
        labels: NDArray[np.int64],
        severities: NDArray[np.float64],
    ) -> NDArray[np.float64]:
        del severities  # a gesture has no fault severity
        r, t, batch = draws, self._t, len(draws)
        basis = np.empty((batch, self.window, 3))
        # Idle hands still move a little: a slow sway well below swipe amplitudes.
        basis[:, :, 0] = np.sin(TWO_PI * 0.8 * t + TWO_PI * r[:, 5:6])
        dur = 0.25 + 0.2 * r[:, 0:1]
        u = np.clip((t - r[:, 1:2] * (t[-1] - dur)) / dur, 0.0, 1.0)  # 0 before, 1 after
        moving = labels[:, None] != 0
        basis[:, :, 1] = np.sin(TWO_PI * u) * moving
        basis[:, :, 2] = np.sin(math.pi * u) * moving
        sign = np.where(labels == 1, -1.0, 1.0)
        acc_amp, gyro_amp = 0.3 + 0.9 * r[:, 2], 0.8 + 2.2 * r[:, 3]
        mix = np.zeros((batch, 3, 6))
        mix[:, 0, 1], mix[:, 0, 5] = 0.1 * r[:, 4], 0.2 * r[:, 4]
        mix[:, 1, 1] = sign * acc_amp
        mix[:, 2, 0], mix[:, 2, 5] = 0.2 * acc_amp, -sign * gyro_amp
        rotation = machines[:, 6:42].reshape(-1, 6, 6)
        out: NDArray[np.float64] = np.matmul(basis, np.matmul(mix, rotation))
        out[:, :, :3] += machines[:, None, 42:45]
        out += _noise(r[:, 6], self.window, 6) * machines[:, None, 0:6]
        return out


PHYSICS: dict[str, Physics] = {"vibration": VibrationPhysics(), "gesture": GesturePhysics()}


def labelled_set(
    physics: Physics, seed: int, per_label: int, machines: int = 64
) -> tuple[FloatArray, NDArray[np.int64]]:
    """A balanced data set over many simulated machines (training and held-out sets)."""
    rng = np.random.default_rng(seed)
    fleet = [physics.machine(rng) for _ in range(machines)]
    xs: list[FloatArray] = []
    ys: list[int] = []
    for label in range(len(physics.labels)):
        for _ in range(per_label):
            machine = fleet[int(rng.integers(machines))]
            severity = float(rng.uniform(0.4, 1.0))
            xs.append(render(physics, rng, machine, label, severity))
            ys.append(label)
    return np.stack(xs), np.asarray(ys, dtype=np.int64)


_SCRATCH: dict[str, NDArray[np.float64]] = {}


def _scratch(name: str, rows: int, cols: int) -> NDArray[np.float64]:
    """A reused (rows, cols) buffer for a batch's machine constants: a fresh one per batch
    (about 1 MiB for 200 vibration devices) costs more in page faults than the signal."""
    buffer = _SCRATCH.get(name)
    if buffer is None or buffer.shape[0] < rows or buffer.shape[1] != cols:
        buffer = _SCRATCH[name] = np.empty((max(rows, 256), cols))
    return buffer[:rows]


class SensorSynth:
    """One device's sensor stream: deterministic for a seed and a sequence of window times.

    Devices are synthesized in batches (`windows`): the per-device part is the fault and
    label bookkeeping and the draws from the device's own generator; the signal itself is
    one vectorized pass for the whole batch.
    """

    __slots__ = ("_drift", "_fault", "_stuck", "machine", "physics", "rng")

    # Share of windows that hold a gesture on a gesture device.
    GESTURE_SHARE = 0.15

    def __init__(
        self,
        physics: Physics,
        seed: int,
        fault: FaultSchedule | None = None,
        drift: DriftSchedule | None = None,
    ) -> None:
        if fault is not None and fault.type not in physics.fault_types:
            raise ValueError(f"fault {fault.type!r} is not one of {physics.fault_types}")
        self.physics = physics
        self.rng = np.random.default_rng(seed)
        self.machine = physics.machine(self.rng)
        self._fault = fault
        self._drift = drift
        self._stuck: float | None = None

    def window(self, t_s: float) -> tuple[FloatArray, int]:
        """The window ending at device uptime `t_s`, and its ground-truth label index."""
        windows, labels = SensorSynth.windows([self], [t_s])
        return windows[0], int(labels[0])

    @staticmethod
    def windows(
        synths: list[SensorSynth], times: list[float]
    ) -> tuple[FloatArray, NDArray[np.int64]]:
        """One window per synth (all of the same physics) at its device uptime."""
        physics = synths[0].physics
        batch = len(synths)
        if len(times) != batch:
            raise ValueError("one time per synth")
        labels = np.zeros(batch, dtype=np.int64)
        levels = np.zeros(batch)
        draws = np.empty((batch, physics.draws))
        machines = _scratch(physics.name, batch, synths[0].machine.size)
        plain = physics.name == "vibration"  # no per-window label draw: the fast path
        degraded = []
        for i, synth in enumerate(synths):
            if not plain or synth._fault is not None:
                labels[i], levels[i] = synth._truth(times[i])
            # Same order as ever: the label draw (gesture), then the window's draws.
            synth.rng.random(out=draws[i])
            machines[i] = synth.machine
            if synth._fault is not None or synth._drift is not None:
                degraded.append(i)
        windows = physics.render_batch(draws, machines, labels, levels).astype(np.float32)
        for i in degraded:
            windows[i] = synths[i]._degrade(windows[i], times[i], float(levels[i]))
        return windows, labels

    def _truth(self, t_s: float) -> tuple[int, float]:
        level = self._fault.level(t_s) if self._fault else 0.0
        if self.physics.name == "vibration":
            fault_type = self._fault.type if self._fault else ""
            return (self.physics.labels.index(fault_type) if level > 0.0 else 0), level
        roll = self.rng.random()
        label = 0 if roll >= self.GESTURE_SHARE else 1 + int(roll * 2 / self.GESTURE_SHARE)
        return label, level

    def _degrade(self, x: FloatArray, t_s: float, level: float) -> FloatArray:
        """Sensor faults and drift on top of the physics."""
        fault_type = self._fault.type if self._fault else ""
        if fault_type == "noise" and level > 0.0:
            x += self.rng.standard_normal(x.shape).astype(np.float32) * np.float32(level)
        elif fault_type == "stuck_axis" and level >= 0.5:
            # A failed gyro axis reads a constant, latched at the first faulty sample.
            if self._stuck is None:
                self._stuck = float(x[0, 5])
            x[:, 5] = self._stuck
        if self._drift is not None:
            offset, gain, noise = self._drift.at(t_s)
            x = x * np.float32(gain) + np.float32(offset)
            if noise > 0.0:
                x += self.rng.standard_normal(x.shape).astype(np.float32) * np.float32(noise)
        return x
