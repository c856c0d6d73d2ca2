from __future__ import annotations

import numpy as np
from tinyml_sim.models import Classifier
from tinyml_sim.quant import quantize


def test_rounds_half_away_from_zero_like_tflite_micro() -> None:
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997], dtype=np.float32)
    assert quantize(x, 1.0, 0).tolist() == [1, 2, 3, -1, -2, -3, 0]


def test_zero_point_and_saturation() -> None:
    x = np.array([0.0, 1.0, 1000.0, -1000.0], dtype=np.float32)
    q = quantize(x, 0.1, -5)
    assert q.dtype == np.int8
    assert q.tolist() == [-5, 5, 127, -128]


def test_round_trip_error_is_half_a_step() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 1000).astype(np.float32)
    back = (quantize(x, 0.01, 3).astype(np.float32) - 3) * np.float32(0.01)
    assert float(np.abs(back - x).max()) <= 0.005 + 1e-6


def test_device_input_uses_the_models_own_parameters(vibration: Classifier) -> None:
    card = vibration.card.raw["input"]
    window = np.full((128, 3), 0.25, dtype=np.float32)
    q = vibration.quantize_input(window)
    assert q.shape == (1, 128, 3)
    assert q.dtype == np.int8
    assert int(q[0, 0, 0]) == int(
        np.clip(round(0.25 / card["scale"]) + card["zero_point"], -128, 127)
    )
