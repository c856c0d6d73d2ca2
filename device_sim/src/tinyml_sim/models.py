"""Shared interpreters: one per model version per process, used by every device of that model."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tinyml_sim.modelcard import ModelCard, model_stem, sha256_hex
from tinyml_sim.quant import quantize

try:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    RUNTIME = "ai-edge-litert"
except ImportError:  # tflite-runtime is the accepted fallback (it needs numpy<2)
    from tflite_runtime.interpreter import Interpreter, OpResolverType

    RUNTIME = "tflite-runtime"


class ModelError(Exception):
    """A model that cannot be used: bad file, digest or signature."""


@dataclass(frozen=True, slots=True)
class Inference:
    label_index: int
    confidence: float
    anomaly_score: float
    inference_us: int


class Classifier:
    """A loaded int8 model. Single-threaded use only (asyncio), shared by many devices."""

    def __init__(self, card: ModelCard, model: bytes) -> None:
        self.card = card
        try:
            # The reference kernels, as on an MCU; the XNNPACK delegate only adds call
            # overhead (about 20 us) to models this small.
            self._interpreter: Any = Interpreter(
                model_content=model,
                num_threads=1,
                experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            )
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"not a usable TFLite model: {exc}") from exc
        inp = self._interpreter.get_input_details()
        out = self._interpreter.get_output_details()
        if len(inp) != 1 or len(out) != 1:
            raise ModelError("expected exactly one input and one output tensor")
        self._check("input", inp[0], card.input_shape)
        self._check("output", out[0], card.output_shape)
        self._in_index = int(inp[0]["index"])
        self._out_index = int(out[0]["index"])
        self._in_scale, self._in_zp = inp[0]["quantization"]
        self._out_scale, self._out_zp = out[0]["quantization"]
        if card.anomaly_method == "one_minus_p_label":
            self._anomaly_index: int | None = card.labels.index(str(card.anomaly_label))
        else:
            self._anomaly_index = None

    @staticmethod
    def _check(role: str, detail: dict[str, Any], shape: tuple[int, ...]) -> None:
        actual = tuple(int(d) for d in detail["shape"])
        if actual != shape or detail["dtype"] is not np.int8:
            raise ModelError(
                f"{role} signature {actual} {np.dtype(detail['dtype']).name} does not match "
                f"the expected {shape} int8"
            )

    @property
    def input_quantization(self) -> tuple[float, int]:
        """(scale, zero point) of the input tensor, as the MCU quantizes its window."""
        return self._in_scale, self._in_zp

    def quantize_input(self, window: NDArray[np.float32]) -> NDArray[np.int8]:
        return quantize(window, self._in_scale, self._in_zp).reshape(self.card.input_shape)

    def classify(self, window: NDArray[np.float32]) -> Inference:
        return self.classify_quantized(self.quantize_input(window))

    def classify_quantized(self, q: NDArray[np.int8]) -> Inference:
        """Inference on an already quantized window (the ticker quantizes in batches)."""
        start = time.perf_counter_ns()
        self._interpreter.set_tensor(self._in_index, q.reshape(self.card.input_shape))
        self._interpreter.invoke()
        raw = self._interpreter.get_tensor(self._out_index)[0].tolist()
        elapsed_us = (time.perf_counter_ns() - start) // 1000
        # Dequantization is monotonic (scale > 0): argmax on the int8 scores, and only the
        # two probabilities the payload needs are dequantized.
        index = raw.index(max(raw))
        confidence = (raw[index] - self._out_zp) * self._out_scale
        ref = index if self._anomaly_index is None else self._anomaly_index
        anomaly = 1.0 - (raw[ref] - self._out_zp) * self._out_scale
        return Inference(index, confidence, min(1.0, max(0.0, anomaly)), elapsed_us)

    def predict_batch(self, windows: NDArray[np.float32]) -> NDArray[np.int64]:
        """Label indices for many windows (evaluation); same kernels as classify()."""
        return np.fromiter(
            (self.classify(w).label_index for w in windows), dtype=np.int64, count=len(windows)
        )


class ModelRegistry:
    """Loads models from a directory and caches them by sha256, so each version loads once."""

    def __init__(self, models_dir: Path) -> None:
        self.models_dir = models_dir
        self._by_sha: dict[str, Classifier] = {}

    def get(self, name: str, version: str) -> Classifier:
        """The committed model `name`-`version` from the models directory (startup)."""
        stem = model_stem(name, version)
        card_path = self.models_dir / f"{stem}.json"
        model_path = self.models_dir / f"{stem}.tflite"
        try:
            card = ModelCard.load(card_path)
            data = model_path.read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read model {stem}: {exc}") from exc
        return self.load(card, data, card.sha256)

    def load(self, card: ModelCard, data: bytes, expected_sha256: str) -> Classifier:
        """A classifier for `data`, after checking its digest (shared when already loaded)."""
        digest = sha256_hex(data)
        if digest != expected_sha256:
            raise ModelError(f"sha256 mismatch: got {digest}, expected {expected_sha256}")
        cached = self._by_sha.get(digest)
        if cached is not None:
            return cached
        classifier = Classifier(card, data)
        self._by_sha[digest] = classifier
        return classifier

    def loaded(self) -> list[Classifier]:
        return list(self._by_sha.values())
