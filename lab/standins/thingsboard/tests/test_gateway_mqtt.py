"""The device transport with a raw MQTT gateway client, alarms, and the imported rule chain."""

from __future__ import annotations

import json
import queue
import time
import uuid
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from .conftest import Api, StandIn, wait_until
from .profiles import alarm_profile, tinyml_rule_chain

DEVICE = "lab-vm2-vibration-00007"


def connect(
    port: int, username: str, *, protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5
) -> tuple[mqtt.Client, Any]:
    """A connected client and the CONNACK reason code it got."""
    result: queue.Queue[Any] = queue.Queue()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}", protocol=protocol
    )
    client.username_pw_set(username)
    client.on_connect = lambda _c, _u, _f, reason, _p: result.put(reason)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client, result.get(timeout=5)


@pytest.fixture(scope="module")
def lab(tenant_admin: Api, mosquitto: int) -> dict[str, Any]:
    imported = tenant_admin.post(
        "/api/ruleChains/import", params={"overwrite": "true"}, json=tinyml_rule_chain(mosquitto)
    )
    chain_id = imported[0]["ruleChainId"]
    profile = tenant_admin.post(
        "/api/deviceProfile",
        json=alarm_profile("vibration-alarm", duration_s=2, rule_chain_id=chain_id),
    )
    gateway = tenant_admin.post(
        "/api/device",
        params={"accessToken": "gw-token-1"},
        json={"name": "lab-gateway-1", "type": "gateway", "additionalInfo": {"gateway": True}},
    )
    device = tenant_admin.post(
        "/api/device", json={"name": DEVICE, "deviceProfileId": profile["id"]}
    )
    tenant_admin.post(
        f"/api/plugins/telemetry/DEVICE/{device['id']['id']}/attributes/SERVER_SCOPE",
        json={"node": "lab-vm2"},
    )
    plain = tenant_admin.post(
        "/api/device", params={"accessToken": "plain-token"}, json={"name": "plain-device"}
    )
    return {"chain": chain_id, "gateway": gateway, "device": device, "plain": plain}


@pytest.fixture
def alerts(mosquitto: int) -> Iterator[queue.Queue[tuple[str, dict[str, Any]]]]:
    received: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="alert-listener")
    client.on_message = lambda _c, _u, m: received.put((m.topic, json.loads(m.payload)))
    client.connect("127.0.0.1", mosquitto)
    client.subscribe("tinyml/devices/+/alert", qos=1)
    client.loop_start()
    time.sleep(0.3)
    yield received
    client.loop_stop()
    client.disconnect()


def test_unknown_token_is_refused(standin: StandIn, lab: dict[str, Any]) -> None:
    client, reason = connect(standin.mqtt_port, "no-such-token")
    assert reason.is_failure
    client.loop_stop()
    v311, reason311 = connect(standin.mqtt_port, "no-such-token", protocol=mqtt.MQTTv311)
    assert reason311.is_failure
    v311.loop_stop()


def test_non_gateway_device_may_not_use_gateway_topics(
    standin: StandIn, lab: dict[str, Any], tenant_admin: Api
) -> None:
    client, reason = connect(standin.mqtt_port, "plain-token")
    assert not reason.is_failure
    client.publish(
        "v1/gateway/telemetry", json.dumps({"sneaky": [{"x": 1}]}), qos=1
    ).wait_for_publish(5)
    client.publish(
        "v1/devices/me/telemetry", json.dumps({"temperature": 21.5}), qos=1
    ).wait_for_publish(5)
    plain_id = lab["plain"]["id"]["id"]
    latest = wait_until(
        lambda: tenant_admin.get(
            f"/api/plugins/telemetry/DEVICE/{plain_id}/values/timeseries",
            params={"keys": "temperature", "useStrictDataTypes": "true"},
        ),
        5,
    )
    assert latest["temperature"][0]["value"] == 21.5
    tenant_admin.get("/api/tenant/device", params={"deviceName": "sneaky"}, expect=404)
    client.loop_stop()
    client.disconnect()


def test_gateway_session_limits_rpc_is_answered(standin: StandIn, lab: dict[str, Any]) -> None:
    client, _ = connect(standin.mqtt_port, "gw-token-1")
    answers: queue.Queue[Any] = queue.Queue()
    client.on_message = lambda _c, _u, m: answers.put((m.topic, json.loads(m.payload)))
    client.subscribe("v1/devices/me/rpc/response/+", qos=1)
    client.subscribe("v1/gateway/attributes/response", qos=1)
    client.publish(
        "v1/devices/me/rpc/request/1",
        json.dumps({"method": "getSessionLimits", "params": {"timeout": 5000}}),
        qos=1,
    )
    topic, limits = answers.get(timeout=5)
    assert topic == "v1/devices/me/rpc/response/1"
    assert {"maxPayloadSize", "maxInflightMessages", "rateLimits", "gatewayRateLimits"} <= set(
        limits
    )
    client.publish(
        "v1/gateway/attributes/request",
        json.dumps({"id": 7, "device": DEVICE, "client": False, "key": "fw"}),
        qos=1,
    )
    topic, answer = answers.get(timeout=5)
    assert (topic, answer["id"], answer["device"]) == ("v1/gateway/attributes/response", 7, DEVICE)
    client.loop_stop()
    client.disconnect()


def test_gateway_telemetry_alarm_alert_and_relation(
    standin: StandIn,
    lab: dict[str, Any],
    tenant_admin: Api,
    alerts: queue.Queue[tuple[str, dict[str, Any]]],
) -> None:
    client, reason = connect(standin.mqtt_port, "gw-token-1")
    assert not reason.is_failure
    client.publish(
        "v1/gateway/connect", json.dumps({"device": DEVICE, "type": "vibration-alarm"}), qos=1
    )
    start = int(time.time() * 1000)
    for i in range(4):  # anomaly_score above 0.8 for 3 s of device time > 2 s duration
        batch = {
            DEVICE: [
                {
                    "ts": start + i * 1000,
                    "values": {"anomaly_score": 0.95, "label": "anomaly", "seq": i},
                }
            ]
        }
        client.publish("v1/gateway/telemetry", json.dumps(batch), qos=1).wait_for_publish(5)
    device_id = lab["device"]["id"]["id"]

    topic, alarm = alerts.get(timeout=10)
    assert topic == f"tinyml/devices/{DEVICE}/alert"
    assert (alarm["type"], alarm["severity"], alarm["status"]) == (
        "Anomaly",
        "MAJOR",
        "ACTIVE_UNACK",
    )
    assert alarm["originator"] == {"entityType": "DEVICE", "id": device_id}
    assert alarm["originatorName"] == DEVICE
    assert alarm["details"] == {"data": "score 0.95"}

    history = tenant_admin.get(
        f"/api/plugins/telemetry/DEVICE/{device_id}/values/timeseries",
        params={
            "keys": "anomaly_score,seq",
            "startTs": start,
            "endTs": start + 10_000,
            "limit": 100,
            "agg": "NONE",
            "orderBy": "ASC",
            "useStrictDataTypes": "true",
        },
    )
    assert [p["value"] for p in history["seq"]] == [0, 1, 2, 3]
    assert tenant_admin.get(f"/api/plugins/telemetry/DEVICE/{device_id}/keys/timeseries") == [
        "anomaly_score",
        "label",
        "seq",
    ]

    active = tenant_admin.get(
        f"/api/alarm/DEVICE/{device_id}",
        params={"pageSize": 10, "page": 0, "searchStatus": "ACTIVE"},
    )
    assert [a["type"] for a in active["data"]] == ["Anomaly"]

    client.publish(
        "v1/gateway/telemetry",
        json.dumps({DEVICE: [{"ts": start + 5000, "values": {"anomaly_score": 0.1}}]}),
        qos=1,
    ).wait_for_publish(5)
    cleared = None
    while cleared is None or cleared["status"] != "CLEARED_UNACK":
        _topic, cleared = alerts.get(timeout=10)
    assert cleared["cleared"] is True

    # First activity -> rule chain -> asset "lab-vm2" created and related to the device.
    node = tenant_admin.get("/api/tenant/asset", params={"assetName": "lab-vm2"})
    relations = tenant_admin.get(f"/api/relations/info/from/ASSET/{node['id']['id']}")
    assert [(r["type"], r["toName"]) for r in relations] == [("Contains", DEVICE)]
    client.loop_stop()
    client.disconnect()


def test_gateway_creates_devices_of_the_named_profile(
    standin: StandIn, lab: dict[str, Any], tenant_admin: Api
) -> None:
    client, _ = connect(standin.mqtt_port, "gw-token-1")
    client.publish(
        "v1/gateway/connect",
        json.dumps({"device": "lab-vm2-audio-00001", "type": "audio-auto"}),
        qos=1,
    )
    client.publish(
        "v1/gateway/telemetry",
        json.dumps({"lab-vm2-audio-00001": [{"label": "speech", "confidence": 0.7}]}),
        qos=1,
    ).wait_for_publish(5)
    device = wait_until(
        lambda: tenant_admin.request(
            "GET",
            "/api/tenant/devices",
            params={"pageSize": 10, "page": 0, "textSearch": "lab-vm2-audio-00001"},
        )["data"],
        5,
    )[0]
    assert device["type"] == "audio-auto"
    latest = wait_until(
        lambda: tenant_admin.get(
            f"/api/plugins/telemetry/DEVICE/{device['id']['id']}/values/timeseries"
        ),
        5,
    )
    assert latest["label"][0]["value"] == "speech"
    assert latest["confidence"][0]["value"] == "0.7"  # non-strict: values as strings, like TB
    client.loop_stop()
    client.disconnect()


def test_inactivity_raises_and_activity_clears_an_offline_alarm(
    standin: StandIn,
    lab: dict[str, Any],
    tenant_admin: Api,
    alerts: queue.Queue[tuple[str, dict[str, Any]]],
) -> None:
    profile_id = tenant_admin.get("/api/tenant/device", params={"deviceName": DEVICE})[
        "deviceProfileId"
    ]
    device = tenant_admin.post(
        "/api/device", json={"name": "lab-vm2-vibration-00099", "deviceProfileId": profile_id}
    )
    device_id = device["id"]["id"]
    tenant_admin.post(
        f"/api/plugins/telemetry/DEVICE/{device_id}/attributes/SERVER_SCOPE",
        json={"inactivityTimeout": 1000, "node": "lab-vm2"},
    )
    client, _ = connect(standin.mqtt_port, "gw-token-1")
    batch = {"lab-vm2-vibration-00099": [{"seq": 1}]}
    client.publish("v1/gateway/telemetry", json.dumps(batch), qos=1).wait_for_publish(5)

    def offline() -> list[dict[str, Any]]:
        page = tenant_admin.get(
            f"/api/alarm/DEVICE/{device_id}",
            params={"pageSize": 10, "page": 0, "searchStatus": "ACTIVE"},
        )
        return [a for a in page["data"] if a["type"] == "Device offline"]

    wait_until(offline, 6, interval=0.3)
    attrs = tenant_admin.get(
        f"/api/plugins/telemetry/DEVICE/{device_id}/values/attributes/SERVER_SCOPE",
        params={"keys": "active"},
    )
    assert attrs[0]["value"] is False
    client.publish("v1/gateway/telemetry", json.dumps(batch), qos=1).wait_for_publish(5)
    wait_until(lambda: not offline(), 5, interval=0.3)
    # The alerts travel through mosquitto, so they may trail the REST view a little.
    statuses: list[str] = []
    while "CLEARED_UNACK" not in statuses:
        alert = alerts.get(timeout=5)[1]
        if alert["type"] == "Device offline" and alert["originatorName"] == device["name"]:
            statuses.append(alert["status"])
    assert statuses == ["ACTIVE_UNACK", "CLEARED_UNACK"]
    client.loop_stop()
    client.disconnect()


def test_burst_from_300_devices(standin: StandIn, lab: dict[str, Any], tenant_admin: Api) -> None:
    """300 devices x 5 readings in one burst through one gateway session (about 5 s of load)."""
    client, _ = connect(standin.mqtt_port, "gw-token-1")
    names = [f"lab-vm5-audio-{i:05d}" for i in range(1, 301)]
    start = int(time.time() * 1000)
    started = time.monotonic()
    for second in range(5):
        for name in names:
            batch = {name: [{"ts": start + second * 1000, "values": {"seq": second, "conf": 0.5}}]}
            client.publish("v1/gateway/telemetry", json.dumps(batch), qos=1)
    last = names[-1]

    def stored() -> bool:
        found = tenant_admin.get(
            "/api/tenant/devices", params={"pageSize": 1, "page": 0, "textSearch": last}
        )["data"]
        if not found:
            return False
        series = tenant_admin.get(
            f"/api/plugins/telemetry/DEVICE/{found[0]['id']['id']}/values/timeseries",
            params={"keys": "seq", "useStrictDataTypes": "true"},
        )
        return bool(series) and series["seq"][0]["value"] == 4

    wait_until(stored, 60, interval=0.5)
    elapsed = time.monotonic() - started
    print(f"1500 gateway messages from 300 new devices stored in {elapsed:.1f} s")
    client.loop_stop()
    client.disconnect()
