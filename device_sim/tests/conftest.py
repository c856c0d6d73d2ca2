from __future__ import annotations

import pytest
from sim_support import MODELS_DIR
from tinyml_sim.models import Classifier, ModelRegistry


@pytest.fixture(scope="session")
def registry() -> ModelRegistry:
    return ModelRegistry(MODELS_DIR)


@pytest.fixture(scope="session")
def vibration(registry: ModelRegistry) -> Classifier:
    return registry.get("vibration-cnn", "1.0.0")


@pytest.fixture(scope="session")
def gesture(registry: ModelRegistry) -> Classifier:
    return registry.get("gesture-cnn", "1.0.0")
