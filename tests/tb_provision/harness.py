"""Run playbooks/provision.yml against the stand-ins, as the role runs in the lab.

Shared by the tests (tests/tb_provision) and the benchmark (bench/provision.py): a ThingsBoard
stand-in process on a throw-away PostgreSQL (helpers of lab/standins/thingsboard/tests), an
EMQX stand-in node (lab/standins/emqx), a tenant with the "TinyML devices" rule chain, a
generated inventory, and ansible-playbook with the JSON callback.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from lab.standins.emqx.emqx_standin.testing import free_port
from lab.standins.thingsboard.tests.conftest import (
    PG_BIN,
    Postgres,
    standin_env,
    wait_until,
)
from lab.standins.thingsboard.tests.profiles import tinyml_rule_chain

REPO = Path(__file__).resolve().parents[2]
CHAIN_NAME = "TinyML devices"
SYSADMIN = "sysadmin@thingsboard.org"
SYSADMIN_PASSWORDS = ("sysadmin", "Sysadmin-Changed-1", "Rotated-Sysadmin-1")
TENANT_PASSWORD = "Fleet-Admin-Pass-1"

# The lab's two classes (inventories/lab/group_vars/all/fleet.yml), trimmed.
CLASSES: list[dict[str, Any]] = [
    {
        "name": "vibration",
        "model": "vibration-cnn",
        "model_version": "1.0.0",
        "hardware": "esp32",
        "publish_max_interval_s": 5.0,
        "offline_after_s": 60,
        "faults": [{"type": "bearing_fault", "share": 0.1, "start_s": [10, 30], "ramp_s": 5}],
        "drift": {"share": 0.1, "start_s": [0, 600], "offset_per_h": 0.02},
        "alarms": [
            {
                "type": "Vibration anomaly",
                "severity": "MAJOR",
                "key": "anomaly_score",
                "above": 0.8,
                "for_s": 10,
                "clear_below": 0.4,
            }
        ],
    },
    {
        "name": "gesture",
        "model": "gesture-cnn",
        "model_version": "1.0.0",
        "hardware": "nrf52840",
        "sample_rate_hz": 2.0,
        "offline_after_s": 60,
        "faults": [{"type": "noise", "share": 0.1, "start_s": [10, 30], "ramp_s": 5}],
        "alarms": [
            {
                "type": "Gesture uncertainty",
                "severity": "MINOR",
                "above": 0.45,
                "for_s": 0,
                "clear_below": 0.1,
            }
        ],
    },
]


# ---- platform ------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres_cluster() -> Iterator[Postgres]:
    """A throw-away PostgreSQL 15 cluster (as lab/standins/thingsboard/tests' fixture)."""
    base = Path(tempfile.mkdtemp(prefix="tbprov-pg-"))
    base.chmod(0o755)
    data = base / "data"
    data.mkdir()
    shutil.chown(data, "postgres", "postgres")
    port = free_port()
    as_pg = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_pg, str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [
            *as_pg,
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-w",
            "-l",
            str(data / "log"),
            "-o",
            options,
            "start",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    try:
        yield Postgres(port)
    finally:
        subprocess.run(
            [*as_pg, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            check=False,
            stdout=subprocess.DEVNULL,
        )
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class ThingsBoard:
    url: str
    mqtt_port: int
    log: Path

    def violations(self) -> list[Any]:
        return list(requests.get(self.url + "/_standin/violations", timeout=10).json())


@contextlib.contextmanager
def thingsboard_standin(pg: Postgres, database: str) -> Iterator[ThingsBoard]:
    """The ThingsBoard stand-in as a process, strict spec mode, on its own database."""
    pg.createdb(database)
    # Ports below the ephemeral range: busy machines hand those out between check and bind.
    http, mqtt = free_port(), free_port()
    env = standin_env(
        pg,
        database,
        HTTP_BIND_PORT=str(http),
        MQTT_BIND_PORT=str(mqtt),
        STANDIN_SPEC_STRICT="1",
        DEFAULT_STATE_CHECK_INTERVAL="1",
        STANDIN_LOG_LEVEL="WARNING",
    )
    command = [sys.executable, "-m", "lab.standins.thingsboard"]
    installed = subprocess.run(
        command,
        env={**env, "INSTALL_TB": "true"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if installed.returncode != 0:
        raise RuntimeError(installed.stderr)
    log = Path(tempfile.mkdtemp(prefix="tbprov-log-")) / "standin.log"
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{http}"
    try:
        wait_until(lambda: _answers(url) or process.poll() is not None, 60)
        if process.poll() is not None:
            raise RuntimeError(log.read_text())
        yield ThingsBoard(url, mqtt, log)
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        shutil.rmtree(log.parent, ignore_errors=True)


def _answers(url: str) -> bool:
    with contextlib.suppress(requests.RequestException):
        return requests.get(url + "/login", timeout=1).status_code == 200
    return False


# ---- tenant ------------------------------------------------------------------------------


@dataclass
class Tenant:
    url: str
    username: str
    password: str
    token: str

    def call(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        response = requests.request(
            method,
            self.url + path,
            headers={"X-Authorization": f"Bearer {self.token}"},
            timeout=120,
            **kwargs,
        )
        if response.status_code != expect:
            raise AssertionError((method, path, response.status_code, response.text[:2000]))
        if response.content and "json" in response.headers.get("Content-Type", ""):
            return response.json()
        return response.text

    def all(self, path: str, **params: Any) -> list[Any]:
        return list(
            self.call("GET", path, params={"pageSize": 100000, "page": 0, **params})["data"]
        )

    def device(self, name: str) -> Any:
        return self.call("GET", "/api/tenant/device", params={"deviceName": name})

    def server_attributes(self, device_id: str) -> dict[str, Any]:
        found = self.call(
            "GET", f"/api/plugins/telemetry/DEVICE/{device_id}/values/attributes/SERVER_SCOPE"
        )
        return {item["key"]: item["value"] for item in found}


def _login(url: str, username: str, password: str) -> str | None:
    response = requests.post(
        url + "/api/auth/login", json={"username": username, "password": password}, timeout=30
    )
    return str(response.json()["token"]) if response.status_code == 200 else None


def sysadmin_token(url: str) -> str:
    for password in SYSADMIN_PASSWORDS:
        token = _login(url, SYSADMIN, password)
        if token:
            return token
    raise AssertionError("no known system administrator password works")


def new_tenant(tb: ThingsBoard, title: str, email: str, *, chain: bool = True) -> Tenant:
    """A tenant, its activated administrator and, unless told otherwise, the TinyML devices
    rule chain (the gateway role's job in the lab)."""
    admin = Tenant(tb.url, "", "", sysadmin_token(tb.url))
    tenant = admin.call("POST", "/api/tenant", json={"title": title})
    user = admin.call(
        "POST",
        "/api/user",
        params={"sendActivationMail": "false"},
        json={"email": email, "authority": "TENANT_ADMIN", "tenantId": tenant["id"]},
    )
    link = admin.call("GET", f"/api/user/{user['id']['id']}/activationLink")
    activation = link.split("activateToken=")[1]
    pair = requests.post(
        tb.url + "/api/noauth/activate",
        json={"activateToken": activation, "password": TENANT_PASSWORD},
        timeout=30,
    ).json()
    result = Tenant(tb.url, email, TENANT_PASSWORD, pair["token"])
    if chain:
        result.call(
            "POST", "/api/ruleChains/import", params={"overwrite": "false"}, json=rule_chain()
        )
    return result


def rule_chain() -> dict[str, Any]:
    """The stand-in tests' TinyML chain under the gateway role's name, relating devices to
    the swarm-node asset named by their server attribute ``node``."""
    chain = copy.deepcopy(tinyml_rule_chain(free_port()))
    chain["ruleChains"][0]["name"] = CHAIN_NAME
    for node in chain["metadata"][0]["nodes"]:
        if node["type"].endswith("TbCreateRelationNode"):
            node["configuration"]["entityTypePattern"] = "swarm-node"
    return chain


# ---- inventory and playbook ----------------------------------------------------------------


def write_inventory(
    directory: Path,
    *,
    fleet: dict[str, dict[str, Any]],
    tenant: Tenant,
    emqx_url: str,
    emqx_key: str,
    emqx_secret: str,
    classes: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """An inventory: simulator hosts with their fleet_devices, and this machine as the
    ThingsBoard host; nothing is ever contacted but the stand-ins."""
    directory.mkdir(parents=True, exist_ok=True)
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory = {
        "all": {
            "vars": {
                "fleet_classes": classes if classes is not None else CLASSES,
                "tb_provision_url": tenant.url,
                "tb_provision_username": tenant.username,
                "tb_provision_password": tenant.password,
                "tb_provision_emqx_api_url": emqx_url,
                "tb_provision_emqx_api_key": emqx_key,
                "tb_provision_emqx_api_secret": emqx_secret,
                "tb_provision_no_log": False,
                **(extra or {}),
            },
            "children": {
                "simulators": {
                    "hosts": {h: {**local, "fleet_devices": c} for h, c in fleet.items()}
                },
                "thingsboard": {"hosts": {"tb-host": local}},
            },
        }
    }
    (directory / "hosts.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    return directory


@dataclass
class Run:
    rc: int
    seconds: float
    stdout: str
    stderr: str
    document: dict[str, Any] = field(default_factory=dict)

    def results(self, task: str) -> dict[str, Any]:
        """Per host result of the task whose name ends with ``task``."""
        for play in self.document.get("plays", []):
            for entry in play["tasks"]:
                if entry["task"]["name"].endswith(task):
                    found: dict[str, Any] = entry["hosts"]
                    return found
        raise KeyError(task)

    def result(self, task: str) -> dict[str, Any]:
        hosts = self.results(task)
        return dict(next(iter(hosts.values())))

    @property
    def changed(self) -> int:
        return sum(int(s.get("changed", 0)) for s in self.document.get("stats", {}).values())

    @property
    def requests(self) -> dict[str, int]:
        found: dict[str, int] = self.result("Sum the requests of this run")["ansible_facts"][
            "tb_provision_requests"
        ]
        return {k: int(v) for k, v in found.items()}

    def failures(self) -> list[str]:
        messages = []
        for play in self.document.get("plays", []):
            for entry in play["tasks"]:
                for host, result in entry["hosts"].items():
                    if result.get("failed"):
                        messages.append(f"{host}: {entry['task']['name']}: {result.get('msg')}")
        return messages


def run_playbook(
    inventory: Path,
    *,
    check: bool = False,
    diff: bool = False,
    extra_vars: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    playbook: str = "playbooks/provision.yml",
    limit: str | None = None,
    timeout: float = 900,
) -> Run:
    command = ["ansible-playbook", "-i", str(inventory), playbook]
    if limit:
        command += ["--limit", limit]
    if check:
        command.append("--check")
    if diff:
        command.append("--diff")
    if extra_vars:
        command += ["-e", json.dumps(extra_vars)]
    environment = {
        **os.environ,
        "ANSIBLE_STDOUT_CALLBACK": "json",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        **(env or {}),
    }
    started = time.monotonic()
    done = subprocess.run(
        command,
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    seconds = time.monotonic() - started
    document: dict[str, Any] = {}
    # ansible.cfg's task timer prints around the JSON document.
    text = "\n" + done.stdout
    if "\n{" in text:
        with contextlib.suppress(ValueError):
            document, _ = json.JSONDecoder().raw_decode(text[text.index("\n{") + 1 :])
    return Run(done.returncode, seconds, done.stdout, done.stderr, document)
