from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.standins.emqx.emqx_standin.testing import StandinNode


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandinNode]:
    """One strict node with built-in authentication and authorization, as the role sets it."""
    standin = StandinNode("single.emqx.test", tmp_path_factory.mktemp("single")).start()
    yield standin
    standin.stop()


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return tmp_path
