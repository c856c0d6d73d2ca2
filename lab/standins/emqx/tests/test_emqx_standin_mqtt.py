"""MQTT through mosquitto: passwords checked exactly, the ACL contract, TLS, publish API."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lab.standins.emqx.emqx_standin.testing import (
    StandinNode,
    mqtt_client,
    publish,
    subscribe,
    wait_for,
)

USERS = "/api/v5/authentication/password_based%3Abuilt_in_database/users"
RULES = "/api/v5/authorization/sources/built_in_database/rules/users"
DEV_A, DEV_B = "lab-vm2-vibration-00001", "lab-vm2-vibration-00002"


def device_rules(name: str) -> list[dict[str, str]]:
    """architecture.md: a device's own subtree, and its class's OTA topic (subscribe)."""
    return [
        {"topic": f"tinyml/devices/{name}/#", "permission": "allow", "action": "all"},
        {"topic": "tinyml/classes/vibration/ota", "permission": "allow", "action": "subscribe"},
    ]


BRIDGE_RULES = [
    {"topic": "tinyml/devices/+/inference", "permission": "allow", "action": "subscribe"},
    {"topic": "tinyml/devices/+/alert", "permission": "allow", "action": "publish"},
    {"topic": "tinyml/classes/+/ota", "permission": "allow", "action": "publish"},
]


@pytest.fixture(scope="module")
def fleet(node: StandinNode) -> StandinNode:
    for user_id, password in ((DEV_A, "pw-a"), (DEV_B, "pw-b"), ("bridge", "pw-bridge")):
        assert node.call("POST", USERS, {"user_id": user_id, "password": password})[0] == 201
    assert (
        node.call("POST", USERS, {"user_id": "root", "password": "pw-root", "is_superuser": True})[
            0
        ]
        == 201
    )
    body = [
        {"username": DEV_A, "rules": device_rules(DEV_A)},
        {"username": DEV_B, "rules": device_rules(DEV_B)},
        {"username": "bridge", "rules": BRIDGE_RULES},
    ]
    assert node.call("POST", RULES, body)[0] == 204
    return node


def test_password_is_checked_exactly(fleet: StandinNode) -> None:
    _, rc = mqtt_client(fleet.mqtt_port, DEV_A, "pw-a")
    assert rc == 0
    _, rc = mqtt_client(fleet.mqtt_port, DEV_A, "pw-a ", client_id="x1")
    assert rc == 135  # not authorized
    _, rc = mqtt_client(fleet.mqtt_port, "nobody", "pw-a")
    assert rc == 135


def test_device_publishes_only_in_its_own_subtree(fleet: StandinNode) -> None:
    client, rc = mqtt_client(fleet.mqtt_port, DEV_A, "pw-a")
    assert rc == 0
    assert publish(client, f"tinyml/devices/{DEV_A}/inference", "{}") == 0
    assert publish(client, f"tinyml/devices/{DEV_B}/inference", "{}") == 135
    assert publish(client, "tinyml/classes/vibration/ota", "{}") == 135
    assert subscribe(client, "tinyml/classes/vibration/ota") == [1]
    client.loop_stop()


def test_device_receives_nothing_from_another_devices_subtree(fleet: StandinNode) -> None:
    # EMQX refuses such a SUBSCRIBE (reason 0x87); mosquitto's ACL file grants it and then
    # delivers nothing that the ACL does not allow (README: not proven by the stand-in).
    spy, _ = mqtt_client(fleet.mqtt_port, DEV_A, "pw-a", client_id="spy")
    subscribe(spy, f"tinyml/devices/{DEV_B}/#")
    subscribe(spy, f"tinyml/devices/{DEV_A}/#")
    other, _ = mqtt_client(fleet.mqtt_port, DEV_B, "pw-b")
    assert publish(other, f"tinyml/devices/{DEV_B}/inference", "secret") == 0
    own, _ = mqtt_client(fleet.mqtt_port, DEV_A, "pw-a", client_id="own")
    assert publish(own, f"tinyml/devices/{DEV_A}/inference", "mine") == 0
    assert wait_for(lambda: len(spy.messages) >= 1)
    assert [m.payload for m in spy.messages] == [b"mine"]
    for client in (spy, other, own):
        client.loop_stop()


def test_bridge_shared_subscription_and_alert(fleet: StandinNode) -> None:
    bridge, rc = mqtt_client(fleet.mqtt_port, "bridge", "pw-bridge")
    assert rc == 0
    assert subscribe(bridge, "$share/tb-gateway/tinyml/devices/+/inference") == [1]
    device, _ = mqtt_client(fleet.mqtt_port, DEV_A, "pw-a")
    subscribe(device, f"tinyml/devices/{DEV_A}/alert")
    assert publish(device, f"tinyml/devices/{DEV_A}/inference", '{"schema":1}') == 0
    assert wait_for(lambda: len(bridge.messages) == 1)
    assert bridge.messages[0].topic == f"tinyml/devices/{DEV_A}/inference"
    assert publish(bridge, f"tinyml/devices/{DEV_A}/alert", "{}") == 0
    assert wait_for(lambda: len(device.messages) == 1)
    assert publish(bridge, f"tinyml/devices/{DEV_A}/inference", "{}") == 135
    bridge.loop_stop()
    device.loop_stop()


def test_superuser_bypasses_rules(fleet: StandinNode) -> None:
    client, rc = mqtt_client(fleet.mqtt_port, "root", "pw-root")
    assert rc == 0
    assert publish(client, "anything/at/all", "x") == 0
    client.loop_stop()


def test_rule_change_applies_without_reconnect(fleet: StandinNode) -> None:
    client, _ = mqtt_client(fleet.mqtt_port, DEV_B, "pw-b")
    assert publish(client, "extra/topic", "x") == 135
    rules = [*device_rules(DEV_B), {"topic": "extra/#", "permission": "allow", "action": "all"}]
    assert fleet.call("PUT", f"{RULES}/{DEV_B}", {"username": DEV_B, "rules": rules})[0] == 204
    assert publish(client, "extra/topic", "x") == 0
    assert client.is_connected()
    client.loop_stop()


def test_deleted_user_cannot_log_in(fleet: StandinNode) -> None:
    fleet.call("POST", USERS, {"user_id": "temp", "password": "pw-t"})
    assert mqtt_client(fleet.mqtt_port, "temp", "pw-t")[1] == 0
    assert fleet.call("DELETE", f"{USERS}/temp")[0] == 204
    assert mqtt_client(fleet.mqtt_port, "temp", "pw-t", client_id="temp2")[1] == 135


def test_publish_api_retained_announcement(fleet: StandinNode) -> None:
    message = {
        "topic": "tinyml/classes/vibration/ota",
        "payload": '{"v":2}',
        "qos": 1,
        "retain": True,
    }
    status, body = fleet.call("POST", "/api/v5/publish", message)
    assert status == 200
    assert body["id"]
    device, _ = mqtt_client(fleet.mqtt_port, DEV_A, "pw-a", client_id="late-device")
    subscribe(device, "tinyml/classes/vibration/ota")
    assert wait_for(lambda: len(device.messages) == 1)
    assert device.messages[0].retain
    assert device.messages[0].payload == b'{"v":2}'
    bulk = [{"topic": f"tinyml/devices/{DEV_A}/ota", "payload": "", "retain": True}]
    status, body = fleet.call("POST", "/api/v5/publish/bulk", bulk)
    assert status == 200
    assert len(body) == 1
    device.loop_stop()
    assert fleet.violations() == []


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA and a server certificate for 127.0.0.1, made with openssl."""
    out = tmp_path_factory.mktemp("pki")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=out, check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    )
    (out / "ext").write_text("subjectAltName=IP:127.0.0.1\n", encoding="utf-8")
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext",
        "-out",
        "server.pem",
    )
    return out


def test_tls_listener_with_given_ca_and_plain_off(tmp_path: Path, pki: Path) -> None:
    standin = StandinNode("tls.emqx.test", tmp_path)
    standin.extra_env = {
        "EMQX_LISTENERS__TCP__DEFAULT__ENABLE": "false",
        "EMQX_LISTENERS__SSL__DEFAULT__ENABLE": "true",
        "EMQX_LISTENERS__SSL__DEFAULT__BIND": f'"127.0.0.1:{standin.ssl_port}"',
        "EMQX_LISTENERS__SSL__DEFAULT__SSL_OPTIONS__CERTFILE": str(pki / "server.pem"),
        "EMQX_LISTENERS__SSL__DEFAULT__SSL_OPTIONS__KEYFILE": str(pki / "server.key"),
        "EMQX_LISTENERS__SSL__DEFAULT__SSL_OPTIONS__CACERTFILE": str(pki / "ca.pem"),
    }
    standin.start()
    try:
        standin.call("POST", USERS, {"user_id": "tls-dev", "password": "pw"})
        client, rc = mqtt_client(standin.ssl_port, "tls-dev", "pw", ca_file=str(pki / "ca.pem"))
        assert rc == 0
        client.loop_stop()
        with pytest.raises(ConnectionRefusedError):
            mqtt_client(standin.mqtt_port, "tls-dev", "pw")
    finally:
        standin.stop()
