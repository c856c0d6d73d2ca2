"""Train, quantize and card the device-class models (seeded; CI never retrains).

    pip install -e 'device_sim[train]'
    python files/models/train.py [--only vibration|gesture] [--out files/models]

Writes <name>-<version>.tflite (full-int8: int8 input and output, as TFLite Micro runs it) and
<name>-<version>.json (the model card). Accuracy in the card is measured with the simulator's
own runtime on a held-out set drawn from new machines with a different seed;
device_sim/tests/test_sim_model_cards.py regenerates that set and checks the committed files.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # type: ignore[import-untyped, import-not-found, unused-ignore]
from tinyml_sim.modelcard import TARGETS, ModelCard, measure_arena, sha256_hex
from tinyml_sim.models import RUNTIME, Classifier
from tinyml_sim.synth import PHYSICS, Physics, labelled_set

SEED = 20240611
HELDOUT_SEED = 777
HELDOUT_PER_LABEL = 400
HELDOUT_MACHINES = 48
ARENA_LIMIT = 16 * 1024
MIN_ACCURACY = 0.95


@dataclass(frozen=True)
class Spec:
    name: str
    version: str
    task: str
    anomaly: dict[str, str]
    per_label: int
    epochs: int


SPECS = {
    "vibration": Spec(
        name="vibration-cnn",
        version="1.0.0",
        task="Predictive maintenance: classify a 128 ms 3-axis accelerometer window of a rotating "
        "machine as normal, imbalance, misalignment or bearing fault.",
        anomaly={
            "method": "one_minus_p_label",
            "label": "normal",
            "description": "1 - P(normal): 0 on a healthy machine, towards 1 as any fault grows.",
        },
        per_label=3000,
        epochs=40,
    ),
    "gesture": Spec(
        name="gesture-cnn",
        version="1.0.0",
        task="Wrist gesture recognition: classify a 640 ms 6-axis IMU window as idle, left swipe "
        "or right swipe (the TinyMLaaS case study's gesture task).",
        anomaly={
            "method": "one_minus_max_p",
            "description": "1 - max(P): the model's uncertainty; high when the input resembles "
            "no trained gesture (sensor noise, a stuck axis).",
        },
        per_label=3000,
        epochs=40,
    ),
}


def build(physics: Physics, batch_size: int | None = None) -> tf.keras.Model:
    """A 1-D CNN small enough for a 16 KiB arena: strided convolutions, no large activations."""
    layers = tf.keras.layers
    inputs = tf.keras.Input((physics.window, len(physics.channels)), batch_size=batch_size)
    x = layers.Conv1D(8, 7, strides=2, padding="same", activation="relu")(inputs)
    x = layers.Conv1D(16, 5, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv1D(16, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling1D()(x) if physics.name == "vibration" else layers.Flatten()(x)
    outputs = layers.Dense(len(physics.labels), activation="softmax")(x)
    return tf.keras.Model(inputs, outputs)


def train(physics: Physics, spec: Spec) -> tf.keras.Model:
    x, y = labelled_set(physics, SEED, spec.per_label, machines=256)
    model = build(physics)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(3e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(
        x, y, epochs=spec.epochs, batch_size=64, validation_split=0.1, verbose=2, shuffle=True
    )
    return model


def convert(model: tf.keras.Model, physics: Physics) -> bytes:
    calib, _ = labelled_set(physics, SEED + 1, 100, machines=64)

    def representative() -> Any:
        for window in calib:
            yield [window[None, ...]]

    # Batch 1, as the MCU runs it (training used a free batch dimension).
    single = build(physics, batch_size=1)
    single.set_weights(model.get_weights())
    converter = tf.lite.TFLiteConverter.from_keras_model(single)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return bytes(converter.convert())


def card_for(physics: Physics, spec: Spec, data: bytes) -> dict[str, Any]:
    from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415

    interp = Interpreter(model_content=data)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    arena = measure_arena(data)
    doc: dict[str, Any] = {
        "schema": 1,
        "name": spec.name,
        "version": spec.version,
        "device_class": physics.name,
        "task": spec.task,
        "labels": list(physics.labels),
        "anomaly_score": spec.anomaly,
        "input": {
            "shape": [int(d) for d in inp["shape"]],
            "dtype": "int8",
            "scale": float(inp["quantization"][0]),
            "zero_point": int(inp["quantization"][1]),
            "sensor": {
                "odr_hz": physics.odr_hz,
                "window": physics.window,
                "channels": list(physics.channels),
                "units": list(physics.units),
            },
        },
        "output": {
            "shape": [int(d) for d in out["shape"]],
            "dtype": "int8",
            "scale": float(out["quantization"][0]),
            "zero_point": int(out["quantization"][1]),
        },
        "evaluation": {
            "seed": HELDOUT_SEED,
            "per_label": HELDOUT_PER_LABEL,
            "machines": HELDOUT_MACHINES,
            "accuracy": 0.0,
            "runtime": "",
        },
        "flash_bytes": len(data),
        "arena_bytes": arena,
        "arena_tool": f"tflite-micro {metadata.version('tflite-micro')} RecordingMicroAllocator "
        "(print_allocations)",
        "sha256": sha256_hex(data),
        "file": f"{spec.name}-{spec.version}.tflite",
        "targets": [
            t for t in TARGETS if t["ram_bytes"] >= arena and t["flash_bytes"] >= len(data)
        ],
        "training": {
            "script": "files/models/train.py",
            "seed": SEED,
            "per_label": spec.per_label,
            "epochs": spec.epochs,
            "tensorflow": tf.__version__,
            "python": platform.python_version(),
        },
    }
    x, y = labelled_set(physics, HELDOUT_SEED, HELDOUT_PER_LABEL, HELDOUT_MACHINES)
    predicted = Classifier(ModelCard.from_json(doc), data).predict_batch(x)
    n = len(physics.labels)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (y, predicted), 1)
    doc["evaluation"].update(
        accuracy=round(float((predicted == y).mean()), 4),
        confusion_matrix=confusion.tolist(),
        runtime=f"{RUNTIME} {metadata.version(RUNTIME)}",
    )
    return doc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SPECS))
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    tf.keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    for cls, spec in SPECS.items():
        if args.only and cls != args.only:
            continue
        physics = PHYSICS[cls]
        data = convert(train(physics, spec), physics)
        card = card_for(physics, spec, data)
        acc, arena = card["evaluation"]["accuracy"], card["arena_bytes"]
        print(
            f"{spec.name}-{spec.version}: accuracy {acc:.4f}, arena {arena} B, flash {len(data)} B"
        )
        if acc < MIN_ACCURACY or arena > ARENA_LIMIT:
            raise SystemExit(
                f"{spec.name} misses its targets (>= {MIN_ACCURACY}, <= {ARENA_LIMIT} B)"
            )
        stem = f"{spec.name}-{spec.version}"
        (args.out / f"{stem}.tflite").write_bytes(data)
        (args.out / f"{stem}.json").write_text(json.dumps(card, indent=2) + "\n")


if __name__ == "__main__":
    main()
