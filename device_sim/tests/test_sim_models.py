from __future__ import annotations

import numpy as np
import pytest
from sim_support import MODELS_DIR
from tinyml_sim.modelcard import ModelCard
from tinyml_sim.models import Classifier, ModelError, ModelRegistry
from tinyml_sim.synth import PHYSICS, render


@pytest.mark.parametrize(
    ("cls", "label"),
    [
        ("vibration", "normal"),
        ("vibration", "imbalance"),
        ("vibration", "misalignment"),
        ("vibration", "bearing_fault"),
        ("gesture", "idle"),
        ("gesture", "left"),
        ("gesture", "right"),
    ],
)
def test_inference_on_fixed_inputs(registry: ModelRegistry, cls: str, label: str) -> None:
    physics = PHYSICS[cls]
    classifier = registry.get(f"{cls}-cnn", "1.0.0")
    rng = np.random.default_rng(123)
    machine = physics.machine(rng)
    window = render(physics, rng, machine, physics.labels.index(label), 1.0)
    result = classifier.classify(window)
    assert classifier.card.labels[result.label_index] == label
    assert 0.5 < result.confidence <= 1.0
    assert 0.0 <= result.anomaly_score <= 1.0
    assert result.inference_us >= 0


def test_anomaly_score_per_class(vibration: Classifier, gesture: Classifier) -> None:
    rng = np.random.default_rng(5)
    physics = PHYSICS["vibration"]
    machine = physics.machine(rng)
    healthy = vibration.classify(render(physics, rng, machine, 0, 0.0))
    faulty = vibration.classify(render(physics, rng, machine, 3, 1.0))
    assert healthy.anomaly_score < 0.1
    assert faulty.anomaly_score > 0.9
    idle = gesture.classify(
        render(PHYSICS["gesture"], rng, PHYSICS["gesture"].machine(rng), 0, 0.0)
    )
    assert idle.anomaly_score == pytest.approx(1.0 - idle.confidence)


def test_one_interpreter_per_model(registry: ModelRegistry, vibration: Classifier) -> None:
    assert registry.get("vibration-cnn", "1.0.0") is vibration


def test_digest_is_checked(registry: ModelRegistry, vibration: Classifier) -> None:
    data = (MODELS_DIR / "vibration-cnn-1.0.0.tflite").read_bytes()
    with pytest.raises(ModelError, match="sha256 mismatch"):
        registry.load(vibration.card, data + b"\0", vibration.card.sha256)


def test_signature_is_checked(vibration: Classifier) -> None:
    gesture_model = (MODELS_DIR / "gesture-cnn-1.0.0.tflite").read_bytes()
    with pytest.raises(ModelError, match="input signature"):
        Classifier(vibration.card, gesture_model)


def test_garbage_is_not_a_model(vibration: Classifier) -> None:
    with pytest.raises(ModelError):
        Classifier(vibration.card, b"not a flatbuffer" * 10)


def test_card_target_lookup(vibration: Classifier) -> None:
    card: ModelCard = vibration.card
    assert card.target(None)["device"] == "esp32"
    assert card.target("nrf52840")["ram_bytes"] >= card.arena_bytes
    with pytest.raises(KeyError):
        card.target("pdp-11")
