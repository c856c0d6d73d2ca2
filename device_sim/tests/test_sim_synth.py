from __future__ import annotations

import numpy as np
import pytest
from tinyml_sim.synth import PHYSICS, DriftSchedule, FaultSchedule, SensorSynth


@pytest.mark.parametrize("cls", sorted(PHYSICS))
def test_same_seed_same_windows(cls: str) -> None:
    a = SensorSynth(PHYSICS[cls], 42)
    b = SensorSynth(PHYSICS[cls], 42)
    for k in range(20):
        wa, la = a.window(k * 0.5)
        wb, lb = b.window(k * 0.5)
        np.testing.assert_array_equal(wa, wb)
        assert la == lb


@pytest.mark.parametrize("cls", sorted(PHYSICS))
def test_other_seed_other_windows(cls: str) -> None:
    wa, _ = SensorSynth(PHYSICS[cls], 1).window(0.0)
    wb, _ = SensorSynth(PHYSICS[cls], 2).window(0.0)
    assert not np.array_equal(wa, wb)


@pytest.mark.parametrize("cls", sorted(PHYSICS))
def test_window_shape_and_units(cls: str) -> None:
    physics = PHYSICS[cls]
    window, _ = SensorSynth(physics, 3).window(1.0)
    assert window.shape == (physics.window, len(physics.channels))
    assert window.dtype == np.float32
    # The accelerometer sees about 1 g of gravity at rest.
    assert 0.8 < float(np.linalg.norm(window[:, :3].mean(axis=0))) < 1.2


def test_fault_ramps_from_start() -> None:
    fault = FaultSchedule("imbalance", start_s=10.0, ramp_s=20.0, severity=0.8)
    assert fault.level(9.9) == 0.0
    assert fault.level(20.0) == pytest.approx(0.4)
    assert fault.level(100.0) == pytest.approx(0.8)
    assert FaultSchedule("imbalance", start_s=1.0).level(1.0) == 1.0


def test_fault_changes_ground_truth_and_signal() -> None:
    physics = PHYSICS["vibration"]
    synth = SensorSynth(physics, 5, FaultSchedule("bearing_fault", start_s=5.0))
    _, before = synth.window(1.0)
    window, after = synth.window(6.0)
    assert (before, after) == (0, physics.labels.index("bearing_fault"))
    assert float(np.abs(np.diff(window, axis=0)).max()) > 0.2  # ringing bursts


def test_unknown_fault_type_is_refused() -> None:
    with pytest.raises(ValueError, match="stuck_axis"):
        SensorSynth(PHYSICS["vibration"], 1, FaultSchedule("stuck_axis", 0.0))


def test_stuck_axis_freezes_gyro_z() -> None:
    synth = SensorSynth(PHYSICS["gesture"], 9, FaultSchedule("stuck_axis", start_s=0.0))
    a, _ = synth.window(1.0)
    b, _ = synth.window(2.0)
    assert np.all(a[:, 5] == a[0, 5])
    assert b[0, 5] == a[0, 5]


def test_drift_grows_with_time() -> None:
    drift = DriftSchedule(start_s=0.0, offset_per_h=0.5, gain_per_h=0.1)
    assert drift.at(0.0) == (0.0, 1.0, 0.0)
    offset, gain, _ = drift.at(7200.0)
    assert (offset, gain) == pytest.approx((1.0, 1.2))
    base = SensorSynth(PHYSICS["vibration"], 7).window(7200.0)[0]
    drifted = SensorSynth(PHYSICS["vibration"], 7, drift=drift).window(7200.0)[0]
    np.testing.assert_allclose(drifted, base * 1.2 + 1.0, rtol=1e-5, atol=1e-5)
