"""library/emqx_mqtt_probe.py against two clustered stand-in nodes (MQTT 3.1.1 client)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.standins.emqx.emqx_standin.testing import StandinNode
from tests.conftest import ansible_doc
from tests.emqx.emqx_testlib import Runner

USERS = "/api/v5/authentication/password_based%3Abuilt_in_database/users"
RULES = "/api/v5/authorization/sources/built_in_database/rules/users"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StandinNode, StandinNode]]:
    base: Path = tmp_path_factory.mktemp("probe")
    one = StandinNode("probe-1.emqx.test", base)
    two = StandinNode("probe-2.emqx.test", base)
    one.seeds, two.seeds = [two], [one]
    one.start()
    two.start()
    one.call("POST", USERS, {"user_id": "tinyml-probe", "password": "Probe-pw-1"})
    one.call(
        "POST",
        RULES,
        [
            {
                "username": "tinyml-probe",
                "rules": [{"topic": "tinyml/probe/#", "permission": "allow", "action": "all"}],
            }
        ],
    )
    yield one, two
    one.stop()
    two.stop()


def probe_args(pub: StandinNode, sub: StandinNode | None = None, **extra: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "publisher": {"host": "127.0.0.1", "port": pub.mqtt_port},
        "username": "tinyml-probe",
        "password": "Probe-pw-1",
        "tls": False,
        "attempts": 3,
        **extra,
    }
    if sub is not None:
        args["subscriber"] = {"host": "127.0.0.1", "port": sub.mqtt_port}
    return args


def test_a_message_crosses_from_one_node_to_the_other(
    pair: tuple[StandinNode, StandinNode], run_module: Runner
) -> None:
    one, two = pair
    result = run_module("emqx_mqtt_probe", probe_args(one, two))
    assert result.get("failed") is not True, result
    assert result["received"] is True
    assert result["changed"] is False
    assert result["connack"] == 0
    assert result["latency_ms"] >= 0
    assert "Probe-pw-1" not in result["_stdout"]


def test_connect_only_reports_a_refused_password_without_failing(
    pair: tuple[StandinNode, StandinNode], run_module: Runner
) -> None:
    one, _ = pair
    result = run_module(
        "emqx_mqtt_probe", probe_args(one, password="wrong-password", connect_only=True)
    )
    assert result.get("failed") is not True, result
    assert result["connack"] in (4, 5)
    assert result["received"] is False
    ok = run_module("emqx_mqtt_probe", probe_args(one, connect_only=True))
    assert ok["connack"] == 0


def test_it_fails_when_the_message_never_arrives(
    pair: tuple[StandinNode, StandinNode], run_module: Runner
) -> None:
    one, two = pair
    # Outside the probe user's subtree: the broker drops the publish.
    result = run_module("emqx_mqtt_probe", probe_args(one, two, topic="tinyml/devices/x/cmd"))
    assert result["failed"] is True
    # The stand-in grants the subscription and drops the message; EMQX refuses the SUBACK.
    assert "did not arrive" in result["msg"] or "refused" in result["msg"]


def test_it_fails_on_a_closed_port(run_module: Runner) -> None:
    result = run_module(
        "emqx_mqtt_probe",
        {"publisher": {"host": "127.0.0.1", "port": 9}, "username": "u", "password": "p" * 8},
    )
    assert result["failed"] is True
    assert "MQTT probe failed" in result["msg"]


def test_ansible_doc_reads_its_options_and_return_values() -> None:
    entry = ansible_doc("emqx_mqtt_probe")
    assert {"publisher", "subscriber", "username", "password", "ca_cert"} <= set(
        entry["doc"]["options"]
    )
    assert set(entry["return"]) == {"received", "attempts", "latency_ms", "connack"}
