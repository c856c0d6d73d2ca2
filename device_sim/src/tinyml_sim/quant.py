"""Int8 affine quantization, bit-exact with TFLite Micro's reference kernels."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def quantize(x: NDArray[np.float32], scale: float, zero_point: int) -> NDArray[np.int8]:
    """q = clamp(round(x / scale) + zero_point) with float32 division and std::round.

    std::round (TfLiteRound) rounds halves away from zero, unlike numpy's round-half-even,
    which would disagree with the MCU on exact halves.
    """
    v = np.divide(x, np.float32(scale), dtype=np.float32)
    whole = np.trunc(v)
    # v - trunc(v) is exact in float32 and |2 * fraction| >= 1 exactly for halves and above,
    # so this is std::round without double rounding (in place: this runs per window).
    v -= whole
    v *= 2
    np.trunc(v, out=v)
    v += whole
    v += zero_point
    np.clip(v, -128, 127, out=v)
    return v.astype(np.int8)
