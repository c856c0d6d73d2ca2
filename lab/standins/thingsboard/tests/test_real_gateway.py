"""The real ThingsBoard IoT Gateway 3.8.3 (PyPI) between mosquitto ("EMQX") and the stand-in.

The gateway lives in its own venv because its tb-paho-mqtt-client installs a ``paho`` package
that clashes with paho-mqtt 2.2; point TBSI_GATEWAY_PYTHON at that venv's python.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from .conftest import Api, StandIn, wait_until

FIXTURES = Path(__file__).parent / "fixtures" / "gateway"
GATEWAY_PYTHON = Path(os.environ.get("TBSI_GATEWAY_PYTHON", "/work/venvs/tbgw/bin/python"))
DEVICE = "lab-vm4-vibration-00003"
SHARED = "lab-vm4-vibration-00004"


@pytest.fixture(scope="module")
def gateway(standin: StandIn, tenant_admin: Api, mosquitto: int) -> Iterator[Path]:
    if not GATEWAY_PYTHON.exists():
        pytest.skip(f"no thingsboard-gateway venv at {GATEWAY_PYTHON} (TBSI_GATEWAY_PYTHON)")
    tenant_admin.post(
        "/api/device",
        params={"accessToken": "real-gw-token"},
        json={"name": "lab-gateway-real", "type": "gateway", "additionalInfo": {"gateway": True}},
    )
    workdir = Path(tempfile.mkdtemp(prefix="tbsi-gw-"))
    for name in ("tb_gateway.json", "logs.json"):
        shutil.copy(FIXTURES / name, workdir / name)
    connector = json.loads((FIXTURES / "mqtt_tinyml.json").read_text())
    connector["broker"].update(host="127.0.0.1", port=mosquitto)
    # Probe for shared subscriptions: the same status mapping, subscribed as $share/...
    shared = json.loads(json.dumps(connector["mapping"][1]))
    shared["topicFilter"] = "$share/tb-gateway/tinyml/devices/+/status"
    shared["converter"]["deviceInfo"]["deviceNameExpression"] = (
        "^tinyml/devices/([A-Za-z0-9][A-Za-z0-9_.-]*)/status$"
    )
    shared["converter"]["timeseries"] = [{"type": "string", "key": "state", "value": "${state}"}]
    connector["mapping"].append(shared)
    (workdir / "mqtt_tinyml.json").write_text(json.dumps(connector))
    env = {
        **os.environ,
        "TB_GW_CONFIG_DIR": str(workdir),
        "TB_GW_HOST": "127.0.0.1",
        "TB_GW_PORT": str(standin.mqtt_port),
        "TB_GW_SECURITY_TYPE": "accessToken",
        "TB_GW_ACCESS_TOKEN": "real-gw-token",
        "TB_GW_LOGS_PATH": str(workdir / "logs"),
    }
    log = (workdir / "gateway.out").open("w")
    proc = subprocess.Popen(
        [str(GATEWAY_PYTHON), "-c", "from thingsboard_gateway.tb_gateway import main; main()"],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(
            lambda: (
                "subscribe to tinyml/devices" in (workdir / "gateway.out").read_text()
                or proc.poll() is not None
            ),
            30,
        )
        assert proc.poll() is None, (workdir / "gateway.out").read_text()
        yield workdir
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        print((workdir / "gateway.out").read_text()[-6000:])
        shutil.rmtree(workdir, ignore_errors=True)


def publish(port: int, topic: str, payload: dict[str, Any], qos: int) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sim-{time.monotonic_ns()}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.publish(topic, json.dumps(payload), qos=qos).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


def inference(name: str, seq: int) -> dict[str, Any]:
    return {
        "schema": 1,
        "class": "vibration-gw",
        "model": "vib-cnn",
        "model_version": "1.2.0",
        "ts": int(time.time() * 1000),
        "label": "normal",
        "confidence": 0.93,
        "anomaly_score": 0.12,
        "inference_us": 850,
        "seq": seq,
    }


def latest(api: Api, name: str) -> dict[str, Any]:
    found = api.get("/api/tenant/devices", params={"pageSize": 1, "page": 0, "textSearch": name})
    if not found["data"]:
        return {}
    device_id = found["data"][0]["id"]["id"]
    return dict(
        api.get(
            f"/api/plugins/telemetry/DEVICE/{device_id}/values/timeseries",
            params={"useStrictDataTypes": "true"},
        )
    )


def test_device_telemetry_reaches_the_stand_in_within_5_s(
    gateway: Path, mosquitto: int, tenant_admin: Api
) -> None:
    started = time.monotonic()
    publish(mosquitto, f"tinyml/devices/{DEVICE}/inference", inference(DEVICE, 41), qos=1)
    values = wait_until(lambda: latest(tenant_admin, DEVICE).get("seq"), 5, interval=0.2)
    print(f"inference visible through REST after {time.monotonic() - started:.2f} s")
    assert values[0]["value"] == 41
    series = latest(tenant_admin, DEVICE)
    assert series["label"][0]["value"] == "normal"
    assert series["confidence"][0]["value"] == 0.93
    assert series["inference_us"][0]["value"] == 850
    assert series["model_version"][0]["value"] == "1.2.0"
    device = tenant_admin.get("/api/tenant/device", params={"deviceName": DEVICE})
    assert device["type"] == "vibration-gw"  # profile taken from the payload's "class"

    health = {
        "schema": 1,
        "class": "vibration-gw",
        "model": "vib-cnn",
        "model_version": "1.2.0",
        "ts": int(time.time() * 1000),
        "uptime_s": 12,
        "free_heap": 40000,
        "rssi": -61,
        "sample_rate_hz": 100.0,
        "seq": 42,
    }
    publish(mosquitto, f"tinyml/devices/{DEVICE}/health", health, qos=0)
    wait_until(lambda: latest(tenant_admin, DEVICE).get("free_heap"), 5, interval=0.2)


def test_shared_subscription_with_wildcard_delivers_nothing(
    gateway: Path, mosquitto: int, tenant_admin: Api
) -> None:
    """3.8.3 subscribes to $share/... but matches incoming topics against the filter's tail as
    a raw regex ("tinyml/devices/+/status"), which never matches a real topic: data is lost."""
    publish(
        mosquitto,
        f"tinyml/devices/{SHARED}/status",
        {"schema": 1, "class": "vibration-gw", "state": "online"},
        qos=1,
    )
    publish(mosquitto, f"tinyml/devices/{SHARED}/inference", inference(SHARED, 1), qos=1)
    wait_until(lambda: latest(tenant_admin, SHARED).get("seq"), 5, interval=0.2)
    time.sleep(1.0)
    assert "state" not in latest(tenant_admin, SHARED)
