"""The platform of the rollout tests, once per session: PostgreSQL and the ThingsBoard
stand-in, the EMQX stand-in, the real IoT Gateway between them and a simulator process with
four devices (tests/model_rollout/platform.py)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.standins.emqx.emqx_standin.testing import StandinNode
from lab.standins.thingsboard.tests.conftest import (  # noqa: F401  (fixture)
    Postgres,
    postgres,
)
from tests.model_rollout import platform as plat
from tests.tb_provision import harness


@pytest.fixture(scope="session")
def rollout_platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[plat.Platform]:
    if not plat.GATEWAY_PYTHON.exists():
        pytest.skip(f"no thingsboard-gateway venv at {plat.GATEWAY_PYTHON} (TBSI_GATEWAY_PYTHON)")
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("no mosquitto")
    pg: Postgres = request.getfixturevalue("postgres")
    workdir = tmp_path_factory.mktemp("rollout")
    models = plat.models_dir(workdir / "models")
    document = plat.devices_document()
    node = StandinNode("rollout.emqx.test", workdir / "emqx").start()
    try:
        plat.provision_emqx(node, document)
        with harness.thingsboard_standin(pg, "modelrollout") as tb:
            tag = uuid.uuid4().hex[:8]
            tenant = harness.new_tenant(
                tb, f"Rollout {tag}", f"rollout-{tag}@fleet.test", chain=False
            )
            plat.warm_up_keys(tenant)
            with (
                plat.gateway(workdir, tenant, tb.mqtt_port, node.mqtt_port),
                plat.simulator(workdir, node, models) as sim,
            ):
                yield plat.Platform(tb, tenant, node, sim, models, workdir)
    finally:
        node.stop()
