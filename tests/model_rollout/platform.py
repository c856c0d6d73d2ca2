"""The platform a rollout needs, on this machine: the EMQX stand-in (with the devices' users
and ACL), the ThingsBoard stand-in, the real ThingsBoard IoT Gateway 3.8.3 configured from
roles/tb_gateway's templates between them, and real device_sim devices. Plus the models
directory the rollout reads, with test-only new versions of vibration-cnn.

The new versions are fixtures, not trained models (see README.md of the role):
- 1.1.0 and 1.2.0: vibration-cnn 1.0.0's weights with the flatbuffer's description string
  changed, so the file (and its sha256) differs and the devices take it as a new model;
- 1.2.1: gesture-cnn 1.0.0's bytes under a vibration-cnn card (the card is consistent with
  the file, so every check of the playbook passes, but the tensors do not fit the class: the
  devices reject it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lab.standins.emqx.emqx_standin.testing import (
    API_KEY,
    API_SECRET,
    StandinNode,
    free_port,
    mqtt_client,
    subscribe,
)
from lab.standins.thingsboard.tests.conftest import wait_until
from tests.conftest import load_source
from tests.render import render
from tests.tb_provision import harness

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "files" / "models"
GATEWAY_PYTHON = Path(
    os.environ.get("TBSI_GATEWAY_PYTHON", str(REPO / ".venv-gateway" / "bin" / "python"))
)
GATEWAY_FIXTURES = REPO / "lab" / "standins" / "thingsboard" / "tests" / "fixtures" / "gateway"
BRIDGE_USER, BRIDGE_PASSWORD = "tinyml-bridge", "Bridge-pass-1"
GATEWAY_TOKEN = "rollout-gateway-token"
HOST = "sim-a"
COUNTS = {"vibration": 3, "gesture": 1}

# The inventory's classes (inventories/lab/group_vars/all/fleet.yml, trimmed).
CLASSES: list[dict[str, Any]] = [
    {"name": "vibration", "model": "vibration-cnn", "model_version": "1.0.0", "hardware": "esp32"},
    {"name": "gesture", "model": "gesture-cnn", "model_version": "1.0.0", "hardware": "nrf52840"},
]
# The same classes as the simulator runs them: fast, so a health window of seconds sees data.
SIM_CLASSES: dict[str, dict[str, Any]] = {
    "vibration": {
        "model": "vibration-cnn",
        "model_version": "1.0.0",
        "hardware": "esp32",
        "sample_rate_hz": 2.0,
        "window": 128,
        "publish_min_interval_s": 0.0,
        "publish_max_interval_s": 1.0,
        "health_interval_s": 1.0,
        "alert_rate_factor": 4.0,
        "buffer_size": 100,
    },
    "gesture": {
        "model": "gesture-cnn",
        "model_version": "1.0.0",
        "hardware": "nrf52840",
        "sample_rate_hz": 2.0,
        "window": 64,
        "publish_min_interval_s": 0.0,
        "publish_max_interval_s": 1.0,
        "health_interval_s": 1.0,
        "alert_rate_factor": 4.0,
        "buffer_size": 100,
    },
}


# ---- models ------------------------------------------------------------------------------


def _variant(stem: str, version: str, data: bytes, directory: Path) -> None:
    """A card ``vibration-cnn-<version>`` for ``data``, from vibration-cnn 1.0.0's card."""
    card = json.loads((COMMITTED / f"{stem}.json").read_text())
    name = f"{card['name']}-{version}"
    digest = hashlib.sha256(data).hexdigest()
    card.update(version=version, sha256=digest, flash_bytes=len(data), file=f"{name}.tflite")
    card["training"] = {"script": "tests/model_rollout/platform.py (test fixture, not trained)"}
    (directory / f"{name}.tflite").write_bytes(data)
    (directory / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")


def models_dir(directory: Path) -> Path:
    """The committed models, plus vibration-cnn 1.1.0, 1.2.0 (same weights, new files) and
    1.2.1 (gesture-cnn's bytes under a vibration card)."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in COMMITTED.glob("*-1.0.0.*"):
        shutil.copy(path, directory / path.name)
    base = (COMMITTED / "vibration-cnn-1.0.0.tflite").read_bytes()
    marker = b"MLIR Converted."
    assert base.count(marker) == 1
    for version, text in (("1.1.0", b"Rollout fix 110"), ("1.2.0", b"Rollout fix 120")):
        _variant("vibration-cnn-1.0.0", version, base.replace(marker, text), directory)
    gesture = (COMMITTED / "gesture-cnn-1.0.0.tflite").read_bytes()
    _variant("vibration-cnn-1.0.0", "1.2.1", gesture, directory)
    return directory


# ---- devices -------------------------------------------------------------------------------


def devices_document() -> dict[str, Any]:
    devices = []
    seed = 1
    for cls, count in COUNTS.items():
        for number in range(1, count + 1):
            devices.append(
                {
                    "name": f"{HOST}-{cls}-{number:05d}",
                    "class": cls,
                    "password": f"Device-pass-{seed}",
                    "seed": seed,
                    "fault": None,
                    "drift": None,
                }
            )
            seed += 1
    return {"schema": 1, "host": HOST, "classes": SIM_CLASSES, "devices": devices}


def provision_emqx(node: StandinNode, document: dict[str, Any]) -> None:
    """The devices' users and ACL as the emqx role makes them, and the bridge user."""
    filters = load_source("plugins/filter/emqx_filters.py")
    devices = [
        {"name": d["name"], "password": d["password"], "class": d["class"]}
        for d in document["devices"]
    ]
    users = [
        *filters.emqx_device_users(devices),
        {"user_id": BRIDGE_USER, "password": BRIDGE_PASSWORD, "is_superuser": False},
    ]
    base = "/api/v5/authentication/password_based:built_in_database"
    for user in users:
        status, body = node.call("POST", f"{base}/users", user)
        assert status == 201, (status, body)
    rules = [*filters.emqx_device_acl(devices), *filters.emqx_bridge_acl(BRIDGE_USER)]
    status, body = node.call(
        "POST", "/api/v5/authorization/sources/built_in_database/rules/users", rules
    )
    assert status == 204, (status, body)


@dataclass
class Simulator:
    process: subprocess.Popen[bytes]
    metrics_port: int
    log: Path

    def devices(self) -> dict[str, dict[str, Any]]:
        url = f"http://127.0.0.1:{self.metrics_port}/devices"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.loads(response.read())
        rows = body["devices"] if isinstance(body, dict) else body
        return {row["name"]: row for row in rows}

    def versions(self) -> dict[str, str]:
        return {name: row["model_version"] for name, row in self.devices().items()}


@contextlib.contextmanager
def simulator(workdir: Path, node: StandinNode, models: Path) -> Iterator[Simulator]:
    document = devices_document()
    devices_file = workdir / "devices.json"
    devices_file.write_text(json.dumps(document))
    port = free_port()
    env = {
        **os.environ,
        "TINYML_SIM_DEVICES_FILE": str(devices_file),
        "TINYML_SIM_BROKER": f"127.0.0.1:{node.mqtt_port}",
        "TINYML_SIM_MODELS_DIR": str(models),
        "TINYML_SIM_METRICS_PORT": str(port),
        "TINYML_SIM_METRICS_HOST": "127.0.0.1",
        "TINYML_SIM_STATS_INTERVAL": "3600",
        "TINYML_SIM_LOG_LEVEL": "INFO",
    }
    log = workdir / "simulator.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tinyml_sim.cli", "run"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    sim = Simulator(process, port, log)
    try:
        wait_until(lambda: _all_connected(sim) or process.poll() is not None, 60)
        assert process.poll() is None, log.read_text()[-4000:]
        yield sim
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _all_connected(sim: Simulator) -> bool:
    with contextlib.suppress(OSError, ValueError):
        rows = sim.devices()
        return len(rows) == sum(COUNTS.values()) and all(r["connected"] for r in rows.values())
    return False


# ---- gateway -------------------------------------------------------------------------------


def warm_up_keys(tenant: harness.Tenant) -> None:
    """Make the stand-in know the time series keys of the health check before any device
    reports them. Its TelemetryWriter.add() appends a row to the batch list it read before
    awaiting the new key's id, so when a flush swaps the list meanwhile, the first value of
    a key the database has never seen is lost (lab/standins/thingsboard/telemetry.py; a
    stand-in defect, not ThingsBoard's behaviour)."""
    device = tenant.call("POST", "/api/device", json={"name": "rollout-key-warm-up"})
    values: dict[str, Any] = {"model_version": "0.0.0", "outcome": "none", "version": "0.0.0"}
    values |= {"reason": "", "previous_version": "0.0.0", "errors": 0}
    tenant.call(
        "POST",
        f"/api/plugins/telemetry/DEVICE/{device['id']['id']}/timeseries/ANY",
        json=values,
    )


@contextlib.contextmanager
def gateway(
    workdir: Path, tenant: harness.Tenant, tb_mqtt_port: int, emqx_port: int
) -> Iterator[Path]:
    """The real gateway with the gateway role's own configuration (rendered from its
    templates), pointed at the stand-ins."""
    tenant.call(
        "POST",
        "/api/device",
        params={"accessToken": GATEWAY_TOKEN},
        json={"name": "tinyml-gateway", "type": "gateway", "additionalInfo": {"gateway": True}},
    )
    overrides = {
        "groups": {"thingsboard": ["tb-host"]},
        "inventory_dir": str(workdir),
        "tb_gateway_access_token": GATEWAY_TOKEN,
        "tb_gateway_tenant_admin_password": "unused",
        "tb_gateway_thingsboard_host": "127.0.0.1",
        "tb_gateway_thingsboard_port": tb_mqtt_port,
        "tb_gateway_broker_host": "127.0.0.1",
        "tb_gateway_broker_port": emqx_port,
        "tb_gateway_bridge_username": BRIDGE_USER,
        "tb_gateway_bridge_password": BRIDGE_PASSWORD,
    }
    config = workdir / "gateway"
    config.mkdir()
    main = render("tb_gateway", "tb_gateway.json.j2", overrides)
    connector = render("tb_gateway", "mqtt_connector.json.j2", overrides)
    (config / "tb_gateway.json").write_text(json.dumps(main))
    (config / main["connectors"][0]["configuration"]).write_text(json.dumps(connector))
    shutil.copy(GATEWAY_FIXTURES / "logs.json", config / "logs.json")
    env = {
        **os.environ,
        "TB_GW_CONFIG_DIR": str(config),
        "TB_GW_HOST": "127.0.0.1",
        "TB_GW_PORT": str(tb_mqtt_port),
        "TB_GW_SECURITY_TYPE": "accessToken",
        "TB_GW_ACCESS_TOKEN": GATEWAY_TOKEN,
        "TB_GW_LOGS_PATH": str(config / "logs"),
    }
    log = config / "gateway.out"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(GATEWAY_PYTHON), "-c", "from thingsboard_gateway.tb_gateway import main; main()"],
            cwd=config,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: "subscribe to tinyml/devices" in log.read_text() or process.poll() is not None,
            60,
        )
        assert process.poll() is None, log.read_text()[-4000:]
        yield config
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


# ---- the playbook --------------------------------------------------------------------------


@dataclass
class Platform:
    tb: harness.ThingsBoard
    tenant: harness.Tenant
    emqx: StandinNode
    sim: Simulator
    models: Path
    workdir: Path

    def inventory(
        self, version: str = "1.0.0", extra_hosts: dict[str, Any] | None = None, **settings: Any
    ) -> Path:
        classes = json.loads(json.dumps(CLASSES))
        classes[0]["model_version"] = version
        local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
        hosts = {HOST: {"fleet_devices": COUNTS}, **(extra_hosts or {})}
        inventory = {
            "all": {
                "vars": {
                    "fleet_classes": classes,
                    "model_rollout_models_dir": str(self.models),
                    "model_rollout_tb_url": self.tb.url,
                    "model_rollout_tb_username": self.tenant.username,
                    "model_rollout_tb_password": self.tenant.password,
                    "model_rollout_emqx_api_url": self.emqx.api_url,
                    "model_rollout_emqx_api_key": API_KEY,
                    "model_rollout_emqx_api_secret": API_SECRET,
                    "model_rollout_health_window_s": 4,
                    "model_rollout_poll_interval_s": 1,
                    "model_rollout_clock_skew_s": 1,
                    **settings,
                },
                "children": {
                    "simulators": {"hosts": hosts},
                    "thingsboard": {"hosts": {"tb-host": local}},
                },
            }
        }
        directory = Path(tempfile.mkdtemp(prefix="inventory-", dir=self.workdir))
        (directory / "hosts.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
        return directory

    def rollout(self, inventory: Path, **extra_vars: Any) -> harness.Run:
        return harness.run_playbook(
            inventory, playbook="playbooks/rollout-model.yml", extra_vars=extra_vars, timeout=300
        )

    def record(self, device_class: str = "vibration") -> dict[str, Any]:
        tenant_id = self.tenant.call("GET", "/api/auth/user")["tenantId"]["id"]
        key = f"model_rollout_{device_class}"
        found = self.tenant.call(
            "GET",
            f"/api/plugins/telemetry/TENANT/{tenant_id}/values/attributes/SERVER_SCOPE",
            params={"keys": key},
        )
        return next((dict(item["value"]) for item in found if item["key"] == key), {})

    def retained(self, topics: list[str]) -> dict[str, bytes]:
        """The retained message of each topic (absent when none), as a fresh subscriber
        gets it."""
        status, _ = self.emqx.call(
            "POST",
            "/api/v5/authentication/password_based:built_in_database/users",
            {"user_id": "rollout-observer", "password": "Observer-1", "is_superuser": True},
        )
        assert status in (201, 409)
        client, rc = mqtt_client(self.emqx.mqtt_port, "rollout-observer", "Observer-1")
        assert rc == 0
        try:
            for topic in topics:
                subscribe(client, topic)
            time.sleep(1.0)
            return {m.topic: bytes(m.payload) for m in client.messages if m.retain}
        finally:
            client.loop_stop()
            client.disconnect()


def violations(platform: Platform) -> list[Any]:
    return list(platform.tb.violations()) + list(platform.emqx.violations())


def tb_latest(platform: Platform, device: str) -> dict[str, Any]:
    """The device's latest time series in ThingsBoard ({} while it does not exist)."""
    found = (
        platform.tenant.call(
            "GET", "/api/tenant/devices", params={"deviceName": device}, expect=200
        )
        if False
        else None
    )
    try:
        found = platform.tenant.device(device)
    except AssertionError:
        return {}
    values = platform.tenant.call(
        "GET",
        f"/api/plugins/telemetry/DEVICE/{found['id']['id']}/values/timeseries",
        params={"useStrictDataTypes": "true"},
    )
    return {key: entries[0]["value"] for key, entries in values.items()}
