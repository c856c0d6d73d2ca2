"""The committed models against their cards: a card cannot drift from its model."""

from __future__ import annotations

import importlib.util

import pytest
from sim_support import MODELS_DIR
from tinyml_sim.modelcard import ModelCard, measure_arena, sha256_hex
from tinyml_sim.models import Classifier
from tinyml_sim.synth import PHYSICS, labelled_set

CARDS = sorted(MODELS_DIR.glob("*.json"))
ARENA_LIMIT = 16 * 1024


def test_both_device_classes_have_a_model() -> None:
    classes = {ModelCard.load(p).device_class for p in CARDS}
    assert classes == {"vibration", "gesture"}


@pytest.mark.parametrize("card_path", CARDS, ids=lambda p: p.stem)
def test_card_matches_model(card_path) -> None:  # type: ignore[no-untyped-def]
    card = ModelCard.load(card_path)
    assert card_path.stem == f"{card.name}-{card.version}"
    data = (MODELS_DIR / card.raw["file"]).read_bytes()
    assert card.raw["file"] == f"{card_path.stem}.tflite"
    assert sha256_hex(data) == card.sha256
    assert len(data) == card.flash_bytes
    assert card.arena_bytes <= ARENA_LIMIT
    for target in card.targets:
        assert card.arena_bytes <= target["ram_bytes"]
        assert card.flash_bytes <= target["flash_bytes"]
    physics = PHYSICS[card.device_class]
    assert list(card.labels) == list(physics.labels)
    assert card.input_shape == (1, physics.window, len(physics.channels))
    ev = card.raw["evaluation"]
    x, y = labelled_set(physics, ev["seed"], ev["per_label"], ev["machines"])
    accuracy = float((Classifier(card, data).predict_batch(x) == y).mean())
    assert accuracy >= 0.95
    assert accuracy == pytest.approx(ev["accuracy"], abs=0.005)


@pytest.mark.skipif(
    importlib.util.find_spec("tflite_micro") is None, reason="tflite-micro not installed"
)
@pytest.mark.parametrize("card_path", CARDS, ids=lambda p: p.stem)
def test_arena_measured_with_tflite_micro(card_path) -> None:  # type: ignore[no-untyped-def]
    card = ModelCard.load(card_path)
    assert measure_arena((MODELS_DIR / card.raw["file"]).read_bytes()) == card.arena_bytes
