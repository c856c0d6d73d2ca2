"""The ThingsBoard stand-in (a process on a throw-away PostgreSQL) for the module tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lab.standins.thingsboard.tests.conftest import (  # noqa: F401  (fixtures)
    StandIn,
    postgres,
    standin,
)


@pytest.fixture(autouse=True)
def no_spec_violations(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every request the modules send must conform to ThingsBoard's OpenAPI spec."""
    yield
    if "standin" in request.fixturenames:
        found = request.getfixturevalue("standin").violations()
        assert found == [], found
