from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # lab.* and tests.* when pytest runs without -m

from lab.standins.emqx.emqx_standin.testing import StandinNode  # noqa: E402
from tests.emqx.emqx_testlib import Runner  # noqa: E402


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandinNode]:
    standin = StandinNode("modules.emqx.test", tmp_path_factory.mktemp("modules")).start()
    yield standin
    standin.stop()


@pytest.fixture(scope="module")
def run_module(tmp_path_factory: pytest.TempPathFactory) -> Runner:
    return Runner(tmp_path_factory.mktemp("ansible"))
