"""A 10,000-device fleet: bulk creation, then an idempotent re-run in a handful of requests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from lab.standins.emqx.emqx_standin.testing import StandinNode, mqtt_client
from tests.emqx.emqx_testlib import Runner, connection

FLEET = 10_000


def device(i: int) -> str:
    return f"lab-vm2-vibration-{i:05d}"


@pytest.fixture(scope="module")
def fleet_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandinNode]:
    standin = StandinNode("scale.emqx.test", tmp_path_factory.mktemp("scale")).start()
    yield standin
    standin.stop()


def test_ten_thousand_users_and_rules(
    fleet_node: StandinNode, run_module: Runner, capsys: pytest.CaptureFixture[str]
) -> None:
    users = [{"user_id": device(i), "password": f"pw-{i}"} for i in range(1, FLEET + 1)]
    rules: list[dict[str, Any]] = [
        {
            "username": device(i),
            "rules": [
                {"topic": f"tinyml/devices/{device(i)}/#", "permission": "allow", "action": "all"},
                {
                    "topic": "tinyml/classes/vibration/ota",
                    "permission": "allow",
                    "action": "subscribe",
                },
            ],
        }
        for i in range(1, FLEET + 1)
    ]
    users_args = {**connection(fleet_node), "users": users, "purge_pattern": "lab-vm2-.*"}
    rules_args = {**connection(fleet_node), "rules": rules, "purge_pattern": "lab-vm2-.*"}

    started = time.monotonic()
    created_users = run_module("emqx_users", users_args)
    created_rules = run_module("emqx_acl", rules_args)
    first_seconds = time.monotonic() - started
    assert created_users["created_count"] == FLEET
    assert created_rules["created_count"] == FLEET
    first = created_users["requests"] + created_rules["requests"]

    started = time.monotonic()
    again_users = run_module("emqx_users", users_args)
    again_rules = run_module("emqx_acl", rules_args)
    again_seconds = time.monotonic() - started
    assert again_users["changed"] is False
    assert again_rules["changed"] is False
    again = again_users["requests"] + again_rules["requests"]
    assert again <= 4

    with capsys.disabled():
        print(
            f"\n{FLEET} users + {FLEET} ACL entries: first run {first} requests "
            f"({created_users['requests']} users, {created_rules['requests']} acl) in "
            f"{first_seconds:.1f}s; re-run {again} requests in {again_seconds:.1f}s"
        )
    assert mqtt_client(fleet_node.mqtt_port, device(FLEET), f"pw-{FLEET}")[1] == 0
    assert fleet_node.violations() == []
