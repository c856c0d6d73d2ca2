"""The gateway role's rendered configuration against the pinned gateway 3.8.3's own
reference files, the stack against Docker 20.10's schema, the rule chain against the node
types the lab's stand-in interprets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.render import render, repo_path, stack_schema_errors

GATEWAY_SPECS = repo_path("specs", "thingsboard-gateway-3.8.3")
# The reference mqtt.json shows only anonymous access; the connector reads these for basic
# authentication (thingsboard_gateway/connectors/mqtt/mqtt_connector.py, 3.8.3:
# `if "username" in self.__broker["security"]: username_pw_set(username, password)`).
BASIC_AUTH_KEYS = {"broker.security.username", "broker.security.password"}

# The reference tb_gateway.json lists no connector; an entry is {type, name, configuration}
# (read by thingsboard_gateway/gateway/tb_gateway_service.py, 3.8.3: connector['name'],
# connector['type'], connector['configuration']).
CONNECTOR_ENTRY_KEYS = {"connectors.type", "connectors.name", "connectors.configuration"}

OVERRIDES = {
    "groups": {"thingsboard": ["tb-host"]},
    "inventory_dir": "/nonexistent",
    "tb_gateway_access_token": "token",
    "tb_gateway_tenant_admin_password": "x",
    "tb_gateway_bridge_password": "bridge-secret",
}


def key_paths(node: Any, prefix: str = "") -> Iterator[str]:
    """Dotted paths of every mapping key; list items contribute their keys under the list."""
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else key
            yield path
            yield from key_paths(value, path)
    elif isinstance(node, list):
        for item in node:
            yield from key_paths(item, prefix)


def rendered_json(template: str) -> Any:
    return render("tb_gateway", template, OVERRIDES)


def test_main_configuration_uses_only_keys_of_the_reference() -> None:
    reference = set(key_paths(json.loads((GATEWAY_SPECS / "tb_gateway.json").read_text())))
    ours = set(key_paths(rendered_json("tb_gateway.json.j2")))
    assert sorted(ours - reference - CONNECTOR_ENTRY_KEYS) == []


def test_mqtt_connector_uses_only_keys_of_the_reference() -> None:
    reference = set(key_paths(json.loads((GATEWAY_SPECS / "mqtt.json").read_text())))
    ours = set(key_paths(rendered_json("mqtt_connector.json.j2")))
    assert sorted(ours - reference - BASIC_AUTH_KEYS) == []


def test_connector_maps_the_device_contract() -> None:
    connector = rendered_json("mqtt_connector.json.j2")
    assert connector["broker"]["security"] == {
        "type": "basic",
        "username": "tinyml-bridge",
        "password": "bridge-secret",
    }
    filters = [m["topicFilter"] for m in connector["mapping"]]
    assert filters == [
        "tinyml/devices/+/inference",
        "tinyml/devices/+/health",
        "tinyml/devices/+/status",
        "tinyml/devices/+/ota/result",
    ]
    inference = connector["mapping"][0]["converter"]
    assert inference["deviceInfo"]["deviceProfileExpression"] == "${class}"
    assert {"key": "anomaly_score", "type": "double", "value": "${anomaly_score}"} in inference[
        "timeseries"
    ]


def test_inference_keys_are_those_of_the_simulator_payload() -> None:
    schema = json.loads(
        repo_path("device_sim", "src", "tinyml_sim", "schema", "inference.v1.json").read_text()
    )
    mapped = {
        t["key"]
        for t in rendered_json("mqtt_connector.json.j2")["mapping"][0]["converter"]["timeseries"]
    }
    assert mapped <= set(schema["properties"])


def test_stack_validates_against_the_docker_20_10_schema() -> None:
    assert stack_schema_errors(render("tb_gateway", "stack.yml.j2", OVERRIDES)) == []


@pytest.fixture(scope="module")
def chain() -> Any:
    return rendered_json("rule_chain.json.j2")


def test_rule_chain_node_types_are_the_stand_ins(chain: Any) -> None:
    interpreted = {
        "profile.TbDeviceProfileNode",
        "filter.TbMsgTypeSwitchNode",
        "telemetry.TbMsgTimeseriesNode",
        "telemetry.TbMsgAttributesNode",
        "mqtt.TbMqttNode",
        "metadata.TbGetAttributesNode",
        "action.TbCreateRelationNode",
        "action.TbCreateAlarmNode",
        "action.TbClearAlarmNode",
    }
    types = {
        node["type"].removeprefix("org.thingsboard.rule.engine.")
        for node in chain["metadata"]["nodes"]
    }
    assert types <= interpreted


def test_alarms_reach_the_alert_topic_as_the_bridge_user(chain: Any) -> None:
    nodes = chain["metadata"]["nodes"]
    mqtt = next(i for i, n in enumerate(nodes) if n["type"].endswith("TbMqttNode"))
    into_mqtt = {c["type"] for c in chain["metadata"]["connections"] if c["toIndex"] == mqtt}
    assert {"Alarm Created", "Alarm Cleared"} <= into_mqtt
    configuration = nodes[mqtt]["configuration"]
    assert configuration["topicPattern"] == "tinyml/devices/${deviceName}/alert"
    assert configuration["credentials"]["username"] == "tinyml-bridge"
    # Retained: a device that restarts during an alarm must learn of it when it subscribes.
    assert configuration["retainedMessage"] is True


def test_the_connector_uses_its_hosts_emqx_node_and_a_lasting_session() -> None:
    """The gateway shares only its own host's fate, and its session outlives a restart."""
    local = render(
        "tb_gateway",
        "mqtt_connector.json.j2",
        {**OVERRIDES, "groups": {"thingsboard": ["TB.host"], "emqx": ["e1", "TB.host"]}},
    )
    assert local["broker"]["host"] == "tb-host.emqx.tinyml"
    assert (local["broker"]["cleanStart"], local["broker"]["cleanSession"]) == (False, False)
    assert local["broker"]["sessionExpiryInterval"] == 3600
    elsewhere = rendered_json("mqtt_connector.json.j2")
    assert elsewhere["broker"]["host"] == "emqx.tinyml"


def test_a_silent_connection_fails_in_seconds() -> None:
    stack = render("tb_gateway", "stack.yml.j2", OVERRIDES)
    assert stack["services"]["gateway"]["sysctls"] == {"net.ipv4.tcp_retries2": "6"}
