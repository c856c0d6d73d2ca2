"""playbooks/provision.yml (roles fleet and tb_provision) against the stand-ins: a fresh fleet,
the node -> device relation the rule chain makes at a device's first activity, a re-run that
changes nothing within the request budget, a scale-up and scale-down shown by check mode
first, MQTT credentials that work (and stop working)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from lab.standins.emqx.emqx_standin.testing import API_KEY, API_SECRET, StandinNode, mqtt_client
from lab.standins.thingsboard.tests.conftest import wait_until
from tests.tb_provision import harness


def inventory(
    path: Path, tenant: harness.Tenant, emqx: StandinNode, fleet: dict[str, dict[str, Any]]
) -> Path:
    return harness.write_inventory(
        path,
        fleet=fleet,
        tenant=tenant,
        emqx_url=emqx.api_url,
        emqx_key=API_KEY,
        emqx_secret=API_SECRET,
    )


def devices_file(path: Path, host: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        (path / "credentials" / "fleet" / f"{host}.json").read_text()
    )
    return document


def test_provision_scale_and_rerun(
    tb: harness.ThingsBoard, tenant: harness.Tenant, emqx: StandinNode, tmp_path: Path
) -> None:
    first = {"p-vm1": {"vibration": 4, "gesture": 2}, "p-vm2": {"vibration": 3}}
    grown = {"p-vm1": {"vibration": 6, "gesture": 1}, "p-vm2": {"vibration": 3}}

    fresh = harness.run_playbook(inventory(tmp_path, tenant, emqx, first))
    assert fresh.rc == 0, fresh.failures() or fresh.stderr[-3000:]
    requests = fresh.requests
    # one login; chain + list + 2 profiles; list + 2 assets; list + 1 import;
    # list + 4 dashboards; EMQX: 2 lists, 1 import, 1 ACL create
    assert requests == {
        "login": 1,
        "profiles": 4,
        "assets": 3,
        "devices": 2,
        "dashboards": 5,
        "emqx": 4,
        "total": 19,
    }
    stored = {d["name"]: d for d in tenant.all("/api/tenant/devices")}
    assert sorted(stored) == sorted(
        [f"p-vm1-vibration-{n:05d}" for n in range(1, 5)]
        + ["p-vm1-gesture-00001", "p-vm1-gesture-00002"]
        + [f"p-vm2-vibration-{n:05d}" for n in range(1, 4)]
    )
    attributes = tenant.server_attributes(stored["p-vm2-vibration-00003"]["id"]["id"])
    assert (
        attributes.items()
        >= {
            "class": "vibration",
            "node": "p-vm2",
            "model": "vibration-cnn",
            "model_version": "1.0.0",
            "hardware": "esp32",
            "inactivityTimeout": 60000,
            "decommissioned": False,
        }.items()
    )
    profiles = {p["name"]: p for p in tenant.all("/api/deviceProfiles")}
    chain = tenant.all("/api/ruleChains", textSearch=harness.CHAIN_NAME)[0]
    assert profiles["vibration"]["defaultRuleChainId"]["id"] == chain["id"]["id"]
    rule = profiles["vibration"]["profileData"]["alarms"][0]
    assert rule["alarmType"] == "Vibration anomaly"
    assert rule["createRules"]["MAJOR"]["condition"]["spec"]["predicate"]["defaultValue"] == 10
    assert sorted(a["name"] for a in tenant.all("/api/tenant/assets", type="swarm-node")) == [
        "p-vm1",
        "p-vm2",
    ]
    assert len(tenant.all("/api/tenant/dashboards")) == 4
    first_activity_relates_the_device_to_its_node(tb, tenant, "p-vm2-vibration-00001")

    again = harness.run_playbook(inventory(tmp_path, tenant, emqx, first))
    assert again.rc == 0, again.failures()
    assert again.changed == 0
    assert again.requests["total"] == 12  # login, 2 + 1 + 1 + 5 listings and reads, EMQX 2
    assert again.requests["emqx"] == 2

    files_before = {h: devices_file(tmp_path, h) for h in first}
    preview = harness.run_playbook(inventory(tmp_path, tenant, emqx, grown), check=True, diff=True)
    assert preview.rc == 0, preview.failures()
    assert preview.changed > 0
    assert {h: devices_file(tmp_path, h) for h in first} == files_before
    assert len(tenant.all("/api/tenant/devices")) == 9

    scaled = harness.run_playbook(inventory(tmp_path, tenant, emqx, grown))
    assert scaled.rc == 0, scaled.failures()
    devices_result = scaled.result("Ensure the devices and their server attributes, in bulk")
    assert devices_result["created"] == ["p-vm1-vibration-00005", "p-vm1-vibration-00006"]
    assert devices_result["decommissioned"] == ["p-vm1-gesture-00002"]
    assert scaled.requests["total"] <= 30
    after = devices_file(tmp_path, "p-vm1")
    kept = {d["name"]: d["password"] for d in files_before["p-vm1"]["devices"]}
    for device in after["devices"]:
        if device["name"] in kept:
            assert device["password"] == kept[device["name"]]  # credentials are kept
    new = next(d for d in after["devices"] if d["name"] == "p-vm1-vibration-00006")
    assert mqtt_client(emqx.mqtt_port, new["name"], new["password"])[1] == 0
    gone = kept["p-vm1-gesture-00002"]
    assert mqtt_client(emqx.mqtt_port, "p-vm1-gesture-00002", gone)[1] != 0
    removed = tenant.device("p-vm1-gesture-00002")
    assert tenant.server_attributes(removed["id"]["id"])["decommissioned"] is True


def first_activity_relates_the_device_to_its_node(
    tb: harness.ThingsBoard, tenant: harness.Tenant, name: str
) -> None:
    """The relation design: the bulk import set `node`, the rule chain relates the device to
    that node's asset when the device first sends something."""
    device = tenant.device(name)
    token = tenant.call("GET", f"/api/device/{device['id']['id']}/credentials")["credentialsId"]
    node = tenant.call(
        "GET", "/api/tenant/asset", params={"assetName": name.split("-vibration", maxsplit=1)[0]}
    )

    def related() -> bool:
        found = tenant.call("GET", "/api/relations/info/from/ASSET/" + node["id"]["id"])
        return any(r["to"]["id"] == device["id"]["id"] for r in found)

    assert not related()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name)
    client.username_pw_set(token)
    client.connect("127.0.0.1", tb.mqtt_port)
    client.loop_start()
    try:
        client.publish("v1/devices/me/telemetry", json.dumps({"anomaly_score": 0.1}), qos=1)
        wait_until(related, 20)
    finally:
        client.loop_stop()
        client.disconnect()
