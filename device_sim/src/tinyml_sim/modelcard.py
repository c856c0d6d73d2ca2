"""Model cards: the JSON beside each .tflite that says what the model is and what it needs."""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyml_sim.schemas import validate

# Microcontrollers the models are sized for. ram_bytes / flash_bytes are the budgets the
# firmware (RTOS, TLS + MQTT stack, buffers) leaves to the model's tensor arena and weights.
TARGETS: tuple[dict[str, Any], ...] = (
    {
        "device": "esp32",
        "total_ram_bytes": 532480,
        "total_flash_bytes": 4194304,
        "ram_bytes": 98304,
        "flash_bytes": 1048576,
    },
    {
        "device": "nrf52840",
        "total_ram_bytes": 262144,
        "total_flash_bytes": 1048576,
        "ram_bytes": 65536,
        "flash_bytes": 262144,
    },
    {
        "device": "arduino-nano-33-ble",
        "total_ram_bytes": 262144,
        "total_flash_bytes": 1048576,
        "ram_bytes": 49152,
        "flash_bytes": 196608,
    },
)

_ARENA_LINE = re.compile(r"Arena allocation total (\d+) bytes")


@dataclass(frozen=True, slots=True)
class ModelCard:
    name: str
    version: str
    device_class: str
    labels: tuple[str, ...]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    anomaly_method: str
    anomaly_label: str | None
    arena_bytes: int
    flash_bytes: int
    sha256: str
    targets: tuple[dict[str, Any], ...]
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ModelCard:
        validate("model-card", doc)
        anomaly = doc["anomaly_score"]
        return cls(
            name=doc["name"],
            version=doc["version"],
            device_class=doc["device_class"],
            labels=tuple(doc["labels"]),
            input_shape=tuple(doc["input"]["shape"]),
            output_shape=tuple(doc["output"]["shape"]),
            anomaly_method=anomaly["method"],
            anomaly_label=anomaly.get("label"),
            arena_bytes=doc["arena_bytes"],
            flash_bytes=doc["flash_bytes"],
            sha256=doc["sha256"],
            targets=tuple(doc["targets"]),
            raw=doc,
        )

    @classmethod
    def load(cls, path: Path) -> ModelCard:
        return cls.from_json(json.loads(path.read_text()))

    def with_model(self, version: str, sha256: str, flash_bytes: int) -> ModelCard:
        """This card carried over to a new model file of the same signature (OTA without card)."""
        doc = dict(self.raw, version=version, sha256=sha256, flash_bytes=flash_bytes)
        return ModelCard.from_json(doc)

    def target(self, device: str | None) -> dict[str, Any]:
        for target in self.targets:
            if device is None or target["device"] == device:
                return target
        raise KeyError(f"{self.name}-{self.version} lists no target {device!r}")


def model_stem(name: str, version: str) -> str:
    return f"{name}-{version}"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def measure_arena(model: bytes) -> int:
    """Tensor-arena bytes TFLite Micro's RecordingMicroAllocator reports for this model.

    The allocator prints from C++ (stderr in current builds), so both descriptors are
    redirected to read it.
    """
    from tflite_micro.python.tflite_micro import runtime  # noqa: PLC0415 (dev-only dependency)

    interpreter = runtime.Interpreter.from_bytes(model, arena_size=256 * 1024)
    with tempfile.TemporaryFile(mode="w+") as sink:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            interpreter.print_allocations()
            ctypes.CDLL(None).fflush(None)  # printf output is buffered in the C library
        finally:
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)
        sink.seek(0)
        report = sink.read()
    match = _ARENA_LINE.search(report)
    if match is None:
        raise RuntimeError(f"no arena total in tflite-micro's report:\n{report}")
    return int(match.group(1))
