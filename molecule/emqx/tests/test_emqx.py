"""The EMQX cluster the role deployed on three lab VMs: placement, ports, cluster view,
device and bridge ACL over real MQTT, TLS with the generated CA, the dashboard password,
the stand-in's spec guard, a VM failure, and plain MQTT switched off by a variable.

Cluster-wide tests run once (on the first EMQX host); MQTT clients run on this machine and
reach the VMs' addresses, where 1883/8883 are published in host mode.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from testinfra.host import Host

SCENARIO = Path(__file__).resolve().parents[1]
REPO_ROOT = SCENARIO.parents[1]
sys.path.insert(0, str(REPO_ROOT))  # for the repository's own test helpers
from tests.lab_helpers import playbook, succeeded  # noqa: E402

INVENTORY = SCENARIO / "inventory"
CREDENTIALS = INVENTORY / "credentials" / "emqx"
DEVICE_CREDENTIALS = INVENTORY / "credentials" / "test-devices"
CA_FILE = CREDENTIALS / "ca.pem"
STACK = "emqx"
DEVICE_A = "mol-emqx-1-vibration-00001"  # class vibration
DEVICE_B = "mol-emqx-2-audio-00001"  # class audio
BRIDGE = "tinyml-bridge"
NOT_AUTHORIZED = 135  # MQTT 5 reason code 0x87
BAD_CREDENTIALS = (134, 135)  # 0x86 bad user name or password, 0x87 not authorized


def _inventory() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((INVENTORY / "hosts.yml").read_text())
    children: dict[str, Any] = loaded["all"]["children"]
    return children


EMQX_HOSTS: list[str] = list(_inventory()["emqx"]["hosts"])
ADDRESSES: dict[str, str] = {
    name: spec["lab_vm_address"]
    for group in _inventory().values()
    for name, spec in (group.get("hosts") or {}).items()
    if spec
}
FIRST, LAST = EMQX_HOSTS[0], EMQX_HOSTS[-1]


def secret(name: str, directory: Path = CREDENTIALS) -> str:
    return (directory / name).read_text().strip()


def device_password(name: str) -> str:
    return secret(name, DEVICE_CREDENTIALS)


@pytest.fixture
def first(host: Host) -> Host:
    """Cluster-wide checks run once, on the first EMQX host."""
    if host.backend.get_hostname() != FIRST:
        pytest.skip("cluster-wide check, run on the first EMQX host")
    return host


# -- the VMs and the API ------------------------------------------------------------------
def vm(name: str, *argv: str, check: bool = True, timeout: float = 120) -> str:
    """Run a command in a lab VM (the host's Docker engine reaches it by name)."""
    result = subprocess.run(
        ["docker", "exec", name, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{name}: {argv}: {result.stdout}{result.stderr}")
    return result.stdout


def node_container(name: str) -> str:
    """The running task container of the EMQX node on VM ``name`` (empty if none)."""
    return vm(
        name,
        "docker",
        "ps",
        "--quiet",
        "--no-trunc",
        "--filter",
        f"label=com.docker.swarm.service.name={STACK}_{name}",
        "--filter",
        "status=running",
    ).strip()


def api_address(name: str) -> str:
    """The node's address on its VM's docker_gwbridge (18083 is not published)."""
    containers = json.loads(
        vm(
            name,
            "docker",
            "network",
            "inspect",
            "docker_gwbridge",
            "--format",
            "{{json .Containers}}",
        )
    )
    address: str = containers[node_container(name)]["IPv4Address"].split("/")[0]
    return address


API_CLIENT = """
import base64, json, sys, urllib.request, urllib.error
method, url, body, auth = json.loads(sys.argv[1])
headers = {"Content-Type": "application/json"}
if auth:
    headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
data = json.dumps(body).encode() if body is not None else None
request = urllib.request.Request(url, data=data, method=method, headers=headers)
try:
    with urllib.request.urlopen(request, timeout=30) as response:
        status, raw = response.status, response.read()
except urllib.error.HTTPError as exc:
    status, raw = exc.code, exc.read()
print(json.dumps([status, raw.decode(errors="replace")]))
"""


def api(
    name: str, method: str, path: str, body: Any = None, *, key: bool = True
) -> tuple[int, Any]:
    """Call the REST API of the node on VM ``name`` from that VM (python3 of the VM)."""
    auth = f"tinyml-automation:{secret('api_key_secret')}" if key else None
    url = f"http://{api_address(name)}:18083{path}"
    out = vm(name, "python3", "-c", API_CLIENT, json.dumps([method, url, body, auth]))
    status, raw = json.loads(out)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


def login(name: str, password: str) -> int:
    status, _ = api(
        name, "POST", "/api/v5/login", {"username": "admin", "password": password}, key=False
    )
    return status


def node_name(name: str) -> str:
    return f"emqx@{name}.emqx.tinyml"


def nodes_seen_by(name: str) -> dict[str, str]:
    status, body = api(name, "GET", "/api/v5/nodes")
    assert status == 200, body
    return {n["node"]: n["node_status"] for n in body}


def violations(name: str) -> list[Any] | None:
    """Spec violations the stand-in on VM ``name`` recorded; None for the vendor image."""
    status, body = api(name, "GET", "/_standin/violations", key=False)
    if status == 404:
        return None
    assert status == 200, body
    return list(body)


def assert_no_violations(names: list[str]) -> None:
    for name in names:
        found = violations(name)
        assert not found, f"{name}: requests that EMQX 5.8.6's OpenAPI spec refuses: {found}"


# -- MQTT clients -------------------------------------------------------------------------
class Client:
    """A paho MQTT 5 client with blocking helpers."""

    def __init__(
        self,
        vm_name: str,
        username: str,
        password: str,
        *,
        tls: bool = True,
        client_id: str | None = None,
    ) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"{username}-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.username_pw_set(username, password)
        if tls:
            self.client.tls_set(ca_certs=str(CA_FILE))
        self.port = 8883 if tls else 1883
        self.address = ADDRESSES[vm_name]
        self.messages: list[Any] = []
        self.rc: int | None = None
        self._connected = threading.Event()
        self._acks: dict[int, threading.Event] = {}
        self._codes: dict[int, list[int]] = {}
        self.disconnected = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, msg: self.messages.append(msg)
        self.client.on_publish = self._on_ack
        self.client.on_subscribe = self._on_ack
        self.client.on_disconnect = lambda *_args: self.disconnected.set()

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.rc = reason.value
        self._connected.set()

    def _on_ack(self, _c: Any, _u: Any, mid: int, reasons: Any, _p: Any) -> None:
        codes = reasons if isinstance(reasons, list) else [reasons]
        self._codes[mid] = [c.value for c in codes]
        self._acks.setdefault(mid, threading.Event()).set()

    def connect(self, timeout: float = 10) -> int:
        self.client.connect(self.address, self.port)
        self.client.loop_start()
        self._connected.wait(timeout)
        assert self.rc is not None, f"no CONNACK from {self.address}:{self.port}"
        return self.rc

    def _wait(self, mid: int, timeout: float) -> list[int]:
        assert self._acks.setdefault(mid, threading.Event()).wait(timeout), "no ack"
        return self._codes[mid]

    def subscribe(self, topic: str, timeout: float = 10) -> int:
        _, mid = self.client.subscribe(topic, qos=1)
        assert mid is not None
        return self._wait(mid, timeout)[0]

    def publish(self, topic: str, payload: str, timeout: float = 10) -> int:
        info = self.client.publish(topic, payload, qos=1)
        return self._wait(info.mid, timeout)[0]

    def received(self, payload: str, timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(m.payload.decode() == payload for m in self.messages):
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    opened: list[Client] = []
    yield opened
    for client in opened:
        client.close()


def connected(
    opened: list[Client], vm_name: str, username: str, password: str, *, tls: bool = True
) -> Client:
    client = Client(vm_name, username, password, tls=tls)
    opened.append(client)
    assert client.connect() == 0, f"{username} refused on {vm_name}"
    return client


def payload() -> str:
    return json.dumps({"schema": 1, "probe": uuid.uuid4().hex})


# -- placement and service shape ----------------------------------------------------------
def test_one_broker_task_per_emqx_host(host: Host) -> None:
    name = host.backend.get_hostname()
    if name not in EMQX_HOSTS:
        pytest.skip("not an EMQX host")
    stack_tasks = host.check_output(
        f"docker ps --quiet --filter label=com.docker.stack.namespace={STACK}"
    ).split()
    assert len(stack_tasks) == 1, stack_tasks
    assert stack_tasks[0] in node_container(name)
    health = host.check_output(
        "docker inspect --format '{{.State.Health.Status}}' " + stack_tasks[0]
    )
    assert health == "healthy"


def test_each_node_is_a_pinned_service_with_host_mode_ports_only(first: Host) -> None:
    for name in EMQX_HOSTS:
        spec = json.loads(first.check_output(f"docker service inspect {STACK}_{name}"))[0]["Spec"]
        task = spec["TaskTemplate"]
        container = task["ContainerSpec"]
        assert spec["Mode"]["Replicated"]["Replicas"] == 1
        assert task["Placement"]["Constraints"] == [f"node.labels.tinyml.host == {name}"]
        assert spec["EndpointSpec"]["Mode"] == "dnsrr"
        ports = {
            (p["TargetPort"], p["PublishedPort"], p["PublishMode"])
            for p in spec["EndpointSpec"]["Ports"]
        }
        assert ports == {(1883, 1883, "host"), (8883, 8883, "host")}
        env = dict(item.split("=", 1) for item in container["Env"])
        assert env["EMQX_NODE__NAME"] == node_name(name)
        assert env["EMQX_CLUSTER__DISCOVERY_STRATEGY"] == "static"
        assert json.loads(env["EMQX_CLUSTER__STATIC__SEEDS"]) == [node_name(h) for h in EMQX_HOSTS]
        # Secrets only as swarm secrets, never in the environment.
        assert "EMQX_NODE__COOKIE" not in env
        assert "EMQX_DASHBOARD__DEFAULT_PASSWORD" not in env
        assert secret("cookie") not in json.dumps(spec)
        assert {s["File"]["Name"] for s in container["Secrets"]} == {
            "emqx_cookie",
            "emqx_dashboard_password",
            "emqx_api_keys",
            "emqx_tls_key",
        }
        assert "emqx ctl status" in " ".join(container["Healthcheck"]["Test"])
        mounts = {m["Target"]: m for m in container["Mounts"]}
        assert mounts["/opt/emqx/data"]["Source"] == f"{STACK}_data-{name}"
        assert f"{name}.emqx.tinyml" in task["Networks"][0]["Aliases"]


def test_dashboard_port_is_not_published(first: Host) -> None:
    for name in EMQX_HOSTS:
        with socket.socket() as sock:
            sock.settimeout(3)
            assert sock.connect_ex((ADDRESSES[name], 18083)) != 0, name


# -- cluster ------------------------------------------------------------------------------
def test_every_node_lists_every_emqx_host_as_running(first: Host) -> None:
    expected = {node_name(h): "running" for h in EMQX_HOSTS}
    for name in EMQX_HOSTS:
        assert nodes_seen_by(name) == expected, name


def test_a_message_published_through_node_1_reaches_a_subscriber_on_node_3(
    first: Host, clients: list[Client]
) -> None:
    # The bridge's shared subscription (as the IoT Gateway makes it) on the last node,
    # device A publishing its inference on the first.
    bridge = connected(clients, LAST, BRIDGE, secret("bridge_password"))
    assert bridge.subscribe("$share/tb-gateway/tinyml/devices/+/inference") < 0x80
    device = connected(clients, FIRST, DEVICE_A, device_password(DEVICE_A))
    message = payload()
    assert device.publish(f"tinyml/devices/{DEVICE_A}/inference", message) == 0
    assert bridge.received(message)


# -- authorization (docs/architecture.md) -------------------------------------------------
def test_a_device_publishes_under_its_own_topic_and_is_refused_on_another_devices(
    first: Host, clients: list[Client]
) -> None:
    a = connected(clients, FIRST, DEVICE_A, device_password(DEVICE_A))
    b = connected(clients, EMQX_HOSTS[1], DEVICE_B, device_password(DEVICE_B))
    # Own subtree: publish and subscribe.
    assert a.subscribe(f"tinyml/devices/{DEVICE_A}/cmd") < 0x80
    own = payload()
    assert a.publish(f"tinyml/devices/{DEVICE_A}/cmd/response", own) == 0
    # Device B's subtree: publishing is refused (PUBACK 0x87) ...
    assert a.publish(f"tinyml/devices/{DEVICE_B}/inference", payload()) == NOT_AUTHORIZED
    assert a.publish(f"tinyml/devices/{DEVICE_B}/cmd", payload()) == NOT_AUTHORIZED
    # ... and subscribing delivers nothing (EMQX answers SUBACK 0x87; the stand-in grants
    # the SUBACK and filters delivery, see lab/standins/emqx/README.md).
    code = a.subscribe(f"tinyml/devices/{DEVICE_B}/#")
    secret_message = payload()
    assert b.publish(f"tinyml/devices/{DEVICE_B}/inference", secret_message) == 0
    assert code == NOT_AUTHORIZED or not a.received(secret_message, timeout=3)
    # Class OTA: subscribe its own class only, never publish.
    assert a.subscribe("tinyml/classes/vibration/ota") < 0x80
    assert a.publish("tinyml/classes/vibration/ota", payload()) == NOT_AUTHORIZED
    assert a.publish("tinyml/anything/else", payload()) == NOT_AUTHORIZED


def test_the_bridge_commands_devices_but_cannot_speak_for_them(
    first: Host, clients: list[Client]
) -> None:
    a = connected(clients, FIRST, DEVICE_A, device_password(DEVICE_A))
    assert a.subscribe(f"tinyml/devices/{DEVICE_A}/alert") < 0x80
    bridge = connected(clients, LAST, BRIDGE, secret("bridge_password"))
    alert = payload()
    assert bridge.publish(f"tinyml/devices/{DEVICE_A}/alert", alert) == 0
    assert a.received(alert)
    assert bridge.publish(f"tinyml/devices/{DEVICE_A}/inference", payload()) == NOT_AUTHORIZED
    assert bridge.publish("tinyml/classes/vibration/ota", payload()) == 0


def test_a_wrong_password_and_an_unknown_user_are_refused(first: Host) -> None:
    for username, password in ((DEVICE_A, "not-the-password"), ("nobody-00001", "x" * 12)):
        client = Client(FIRST, username, password)
        try:
            assert client.connect() in BAD_CREDENTIALS, username
        finally:
            client.close()


# -- TLS ----------------------------------------------------------------------------------
def test_tls_with_the_generated_ca_succeeds_and_without_it_fails(first: Host) -> None:
    trusted = ssl.create_default_context(cafile=str(CA_FILE))
    untrusted = ssl.create_default_context()
    for name in EMQX_HOSTS:
        address = ADDRESSES[name]
        with (
            socket.create_connection((address, 8883), timeout=5) as raw,
            trusted.wrap_socket(raw, server_hostname=address) as tls,
        ):
            cert: dict[str, Any] = tls.getpeercert() or {}
            sans = {value for _, value in cert["subjectAltName"]}
            assert {address, f"{name}.emqx.tinyml", "*.emqx.tinyml"} <= sans
        with (
            socket.create_connection((address, 8883), timeout=5) as raw,
            pytest.raises(ssl.SSLCertVerificationError),
        ):
            untrusted.wrap_socket(raw, server_hostname=address)


# -- dashboard ----------------------------------------------------------------------------
def test_the_default_dashboard_password_is_refused_on_every_node(first: Host) -> None:
    for name in EMQX_HOSTS:
        assert login(name, "public") == 401, name
        # A successful login also clears EMQX's failed-login count (lock after 5).
        assert login(name, secret("dashboard_password")) == 200, name


def test_every_request_the_role_sent_conforms_to_the_emqx_spec(first: Host) -> None:
    assert_no_violations(EMQX_HOSTS)


# -- a VM fails ---------------------------------------------------------------------------
def wait_until(predicate: Any, timeout: float, interval: float = 1.0) -> float:
    """Seconds until ``predicate()`` holds; fails after ``timeout``."""
    started = time.monotonic()
    while True:
        try:
            if predicate():
                return time.monotonic() - started
        except (AssertionError, OSError, subprocess.SubprocessError, KeyError, ValueError):
            pass
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout}s: {predicate}")
        time.sleep(interval)


def round_trip(opened: list[Client], publisher_vm: str, subscriber_vm: str) -> bool:
    """Device A publishes through one node, the bridge receives on another."""
    bridge = connected(opened, subscriber_vm, BRIDGE, secret("bridge_password"))
    assert bridge.subscribe("tinyml/devices/+/health") < 0x80
    device = connected(opened, publisher_vm, DEVICE_A, device_password(DEVICE_A))
    message = payload()
    assert device.publish(f"tinyml/devices/{DEVICE_A}/health", message) == 0
    return bridge.received(message, timeout=5)


def test_the_other_brokers_keep_serving_while_a_vm_is_down_and_it_rejoins(
    first: Host, clients: list[Client], capsys: pytest.CaptureFixture[str]
) -> None:
    down = LAST
    alive = [h for h in EMQX_HOSTS if h != down]
    # A subscriber connected before the failure, on a node that stays.
    steady = connected(clients, alive[0], BRIDGE, secret("bridge_password"))
    assert steady.subscribe("tinyml/devices/+/status") < 0x80
    victim = connected(clients, down, DEVICE_B, device_password(DEVICE_B))

    stopped_at = time.monotonic()
    subprocess.run(["docker", "stop", down], check=True, capture_output=True, timeout=120)
    stop_seconds = time.monotonic() - stopped_at
    try:
        assert victim.disconnected.wait(30), "a client of the stopped VM stays connected"
        # New connections, publish and subscribe across the two remaining nodes.
        serving = wait_until(lambda: round_trip(clients, alive[0], alive[1]), timeout=60)
        assert round_trip(clients, alive[1], alive[0])
        # The client that lost its broker reconnects to another one.
        moved = connected(clients, alive[1], DEVICE_B, device_password(DEVICE_B))
        status = payload()
        assert moved.publish(f"tinyml/devices/{DEVICE_B}/status", status) == 0
        assert steady.received(status)
        for name in alive:
            seen = nodes_seen_by(name)
            assert seen[node_name(down)] != "running"
            assert all(seen[node_name(h)] == "running" for h in alive)
    finally:
        started_at = time.monotonic()
        subprocess.run(["docker", "start", down], check=True, capture_output=True, timeout=120)
    healthy = wait_until(
        lambda: len(node_container(down)) > 0 and round_trip(clients, FIRST, down), 240
    )
    listed = wait_until(
        lambda: all(nodes_seen_by(h)[node_name(down)] == "running" for h in EMQX_HOSTS), 120
    )
    rejoined = time.monotonic() - started_at
    assert round_trip(clients, down, FIRST)
    assert_no_violations(EMQX_HOSTS)
    with capsys.disabled():
        print(
            f"\nfailover: docker stop {down} took {stop_seconds:.1f}s; its clients were "
            f"disconnected; pub/sub across {', '.join(alive)} worked {serving:.1f}s after the "
            f"stop; rejoin: {healthy:.1f}s from docker start to messages through {down}, "
            f"{rejoined:.1f}s until every node listed it running (+{listed:.1f}s)"
        )


# -- plain MQTT off -----------------------------------------------------------------------
def run_emqx_playbook(*extra: str) -> None:
    succeeded(playbook(INVENTORY, "playbooks/emqx.yml", *extra, timeout=900))


def refused(address: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(3)
        return sock.connect_ex((address, port)) != 0


def test_plain_mqtt_can_be_switched_off_by_a_variable(first: Host, clients: list[Client]) -> None:
    assert not refused(ADDRESSES[FIRST], 1883)
    assert_no_violations(EMQX_HOSTS)  # before the nodes restart and forget
    try:
        run_emqx_playbook("-e", json.dumps({"emqx_listener_tcp_enable": False}))
        for name in EMQX_HOSTS:
            assert refused(ADDRESSES[name], 1883), name
            client = connected(clients, name, DEVICE_A, device_password(DEVICE_A))
            assert client.publish(f"tinyml/devices/{DEVICE_A}/health", payload()) == 0
        assert_no_violations(EMQX_HOSTS)
    finally:
        run_emqx_playbook()
    plain = connected(clients, FIRST, DEVICE_A, device_password(DEVICE_A), tls=False)
    assert plain.publish(f"tinyml/devices/{DEVICE_A}/health", payload()) == 0
    assert_no_violations(EMQX_HOSTS)
