"""Shared interpreters: one per model version per process, used by every device of that model."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from tinyml_sim.batchmodel import unpin_reshape_batch
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


class Inference(NamedTuple):  # a tuple: one is built per window
    label_index: int
    confidence: float
    anomaly_score: float
    inference_us: int


# Windows per batched invoke: past this the per-window cost no longer falls, and each batch
# size in use holds its own interpreter (an arena of BATCH_MAX windows is a few hundred KiB).
BATCH_MAX = 64
BATCH_SIZES = tuple(1 << i for i in range(1, BATCH_MAX.bit_length()))  # 2, 4, ... BATCH_MAX


def _interpreter(model: bytes) -> Any:
    # The builtin kernels without the XNNPACK delegate: the delegate only adds call overhead
    # (about 20 us) to models this small.
    return Interpreter(
        model_content=model,
        num_threads=1,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )


class Classifier:
    """A loaded int8 model. Single-threaded use only (asyncio), shared by many devices."""

    def __init__(self, card: ModelCard, model: bytes) -> None:
        self.card = card
        self._model = model
        try:
            self._interpreter: Any = _interpreter(model)
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
        # Batch size -> interpreter taking that many windows per invoke; None until the first
        # batch, {} when the model cannot be batched exactly (then windows run one by one).
        self._batched: dict[int, Any] | None = None

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

    @property
    def batched(self) -> bool:
        """Whether classify_batch runs several windows per invoke (known after first use)."""
        if self._batched is None:
            self._batched = self._build_batched()
        return bool(self._batched)

    def classify_batch(self, q: NDArray[np.int8]) -> list[Inference]:
        """classify_quantized for each of a (batch, *input) stack of quantized windows, with
        the same results, in as few invokes as the batch sizes allow (a batch of 200 is
        64 + 64 + 64 + 8). inference_us is then each window's share of its invoke."""
        n = len(q)
        if n == 1 or not self.batched:
            return [self.classify_quantized(w) for w in q]
        assert self._batched is not None
        q = q.reshape(n, *self.card.input_shape[1:])
        results: list[Inference] = []
        done = 0
        while done < n:
            left = n - done
            size = BATCH_MAX if left >= BATCH_MAX else 1 << (left.bit_length() - 1)
            if size == 1:
                results.append(self.classify_quantized(q[done]))
                done += 1
                continue
            interpreter = self._batched[size]
            start = time.perf_counter_ns()
            interpreter.set_tensor(self._in_index, q[done : done + size])
            interpreter.invoke()
            raw = interpreter.get_tensor(self._out_index)
            share_us = (time.perf_counter_ns() - start) // 1000 // size
            results.extend(self._decode(raw, share_us))
            done += size
        return results

    def _decode(self, raw: NDArray[np.int8], inference_us: int) -> list[Inference]:
        """classify_quantized's arithmetic on a batch of int8 scores (same float64 results)."""
        index = raw.argmax(axis=1)  # the first maximum, as list.index(max())
        rows = np.arange(len(raw))
        scores = raw.astype(np.int64)
        confidence = (scores[rows, index] - self._out_zp) * self._out_scale
        ref = index if self._anomaly_index is None else self._anomaly_index
        anomaly = 1.0 - (scores[rows, ref] - self._out_zp) * self._out_scale
        np.clip(anomaly, 0.0, 1.0, out=anomaly)
        return [
            Inference(i, c, a, inference_us)
            for i, c, a in zip(index.tolist(), confidence.tolist(), anomaly.tolist(), strict=True)
        ]

    def _build_batched(self) -> dict[int, Any]:
        """Interpreters for BATCH_SIZES, checked window by window against the single-window
        interpreter on random inputs; {} if the model cannot be batched exactly."""
        shape = self.card.input_shape
        if not shape or shape[0] != 1:
            return {}
        for model in (self._model, unpin_reshape_batch(self._model)):
            if model is None:
                continue
            try:
                batched = {}
                for size in BATCH_SIZES:
                    interpreter = _interpreter(model)
                    interpreter.resize_tensor_input(self._in_index, [size, *shape[1:]])
                    interpreter.allocate_tensors()
                    batched[size] = interpreter
            except (ValueError, RuntimeError):
                continue
            if self._agrees(batched[BATCH_MAX]):
                return batched
        return {}

    def _agrees(self, interpreter: Any) -> bool:
        rng = np.random.default_rng(0)
        probe = rng.integers(-128, 128, (BATCH_MAX, *self.card.input_shape[1:]), dtype=np.int8)
        interpreter.set_tensor(self._in_index, probe)
        interpreter.invoke()
        got = interpreter.get_tensor(self._out_index)
        expected = []
        for window in probe:
            self._interpreter.set_tensor(self._in_index, window[None])
            self._interpreter.invoke()
            expected.append(self._interpreter.get_tensor(self._out_index)[0].copy())
        return got.shape == (BATCH_MAX, *self.card.output_shape[1:]) and bool(
            np.array_equal(got, np.stack(expected))
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
