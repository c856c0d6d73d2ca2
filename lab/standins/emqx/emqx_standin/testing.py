"""Run stand-in nodes as host processes on free loopback ports (for pytest fixtures).

Used by lab/standins/emqx/tests and tests/emqx. Nothing here is used inside the image.
"""

from __future__ import annotations

import base64
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parents[4]
API_KEY, API_SECRET = "ansible", "Emqx-api-s3cret"
AUTHN = "[{mechanism=password_based, backend=built_in_database, user_id_type=username}]"
AUTHZ = "[{type=built_in_database, enable=true}]"


_TAKEN: set[int] = set()


def free_port() -> int:
    """A free port below the kernel's ephemeral range (32768+ here), so that the many
    outgoing test connections cannot grab it between this check and the node's bind."""
    while True:
        port = random.randint(20000, 32000)
        if port in _TAKEN:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _TAKEN.add(port)
        return port


@dataclass
class StandinNode:
    """One node: ``start()``/``stop()`` keep the data directory, like a container restart."""

    name: str
    base: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    api_port: int = field(default_factory=free_port)
    mqtt_port: int = field(default_factory=free_port)
    ssl_port: int = field(default_factory=free_port)
    cluster_port: int = field(default_factory=free_port)
    seeds: list[StandinNode] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    @property
    def node(self) -> str:
        return f"emqx@{self.name}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def data_dir(self) -> Path:
        return self.base / self.name / "data"

    @property
    def log_path(self) -> Path:
        return self.base / self.name / "node.log"

    def env(self) -> dict[str, str]:
        keys = self.base / "api_keys"
        keys.write_text(f"{API_KEY}:{API_SECRET}\n", encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EMQX_", "STANDIN_"))}
        env.update(
            {
                "PYTHONPATH": str(REPO),
                "EMQX_NODE__NAME": self.node,
                "EMQX_NODE__COOKIE": "test-cookie",
                "EMQX_NODE__DATA_DIR": str(self.data_dir),
                "EMQX_DASHBOARD__DEFAULT_PASSWORD": "Adm1n-first",
                "EMQX_DASHBOARD__LISTENERS__HTTP__BIND": f"127.0.0.1:{self.api_port}",
                "EMQX_API_KEY__BOOTSTRAP_FILE": str(keys),
                "EMQX_LISTENERS__TCP__DEFAULT__BIND": f'"127.0.0.1:{self.mqtt_port}"',
                "EMQX_LISTENERS__SSL__DEFAULT__ENABLE": "false",
                "EMQX_LISTENERS__SSL__DEFAULT__BIND": f"127.0.0.1:{self.ssl_port}",
                "EMQX_LISTENERS__WS__DEFAULT__ENABLE": "false",
                "EMQX_LISTENERS__WSS__DEFAULT__ENABLE": "false",
                "EMQX_AUTHENTICATION": AUTHN,
                "EMQX_AUTHORIZATION__NO_MATCH": "deny",
                "EMQX_AUTHORIZATION__SOURCES": AUTHZ,
                "EMQX_LOG__CONSOLE__LEVEL": "info",
                "STANDIN_SPEC_STRICT": "1",
                "STANDIN_CLUSTER_BIND": f"127.0.0.1:{self.cluster_port}",
                "STANDIN_SYNC_INTERVAL": "0.5",
            }
        )
        if self.seeds:
            nodes = [self, *self.seeds]
            env["EMQX_CLUSTER__DISCOVERY_STRATEGY"] = "static"
            env["EMQX_CLUSTER__STATIC__SEEDS"] = json.dumps([n.node for n in nodes])
            env["STANDIN_PEERS"] = json.dumps(
                {
                    n.node: {"api": n.api_url, "cluster": f"127.0.0.1:{n.cluster_port}"}
                    for n in nodes
                }
            )
        env.update(self.extra_env)
        return env

    def start(self, *, wait: bool = True) -> StandinNode:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lab.standins.emqx.emqx_standin"],
            env=self.env(),
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        if wait:
            try:
                self.wait_ready()
            except BaseException:
                self.stop()  # never leave a half-started node behind
                raise
        return self

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.api_url + "/api/v5/status", timeout=1):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start:\n{self.log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-5000:]
        except OSError:
            return ""

    # -- HTTP helpers for tests ------------------------------------------------------------
    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        auth: str | None = "key",
        raw: bytes | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        headers = {}
        if auth == "key":
            token = base64.b64encode(f"{API_KEY}:{API_SECRET}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        elif auth:
            headers["Authorization"] = auth
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(
            self.api_url + path, data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, payload = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, exc.read()
        try:
            return status, json.loads(payload) if payload else None
        except ValueError:
            return status, payload.decode()

    def violations(self) -> list[Any]:
        _, body = self.call("GET", "/_standin/violations", auth=None)
        return list(body)


# -- MQTT helpers for tests ------------------------------------------------------------------
def mqtt_client(
    port: int,
    username: str,
    password: str,
    *,
    ca_file: str | None = None,
    client_id: str | None = None,
    timeout: float = 5,
) -> tuple[Any, int]:
    """Connect an MQTT 5 client; returns (client, CONNACK reason code as int)."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id or username, protocol=mqtt.MQTTv5
    )
    client.username_pw_set(username, password)
    if ca_file:
        client.tls_set(ca_certs=ca_file)
    done = threading.Event()
    result: dict[str, int] = {"rc": -1}
    client.messages = []  # type: ignore[attr-defined]

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        result["rc"] = reason.value
        done.set()

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        client.messages.append(msg)  # type: ignore[attr-defined]

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    done.wait(timeout)
    if result["rc"] != 0:
        client.loop_stop()
    return client, result["rc"]


def subscribe(client: Any, topic: str, qos: int = 1, timeout: float = 5) -> list[int]:
    """Subscribe and return the SUBACK reason codes (0-2 granted, >=0x80 refused)."""
    done = threading.Event()
    codes: list[int] = []

    def on_subscribe(_c: Any, _u: Any, _m: Any, reasons: Any, _p: Any) -> None:
        codes.extend(r.value for r in reasons)
        done.set()

    client.on_subscribe = on_subscribe
    client.subscribe(topic, qos)
    done.wait(timeout)
    return codes


def publish(
    client: Any,
    topic: str,
    payload: bytes | str,
    *,
    qos: int = 1,
    retain: bool = False,
    timeout: float = 5,
) -> int:
    """Publish QoS 1 and return the PUBACK reason code (0 ok, 135 not authorized)."""
    done = threading.Event()
    result = {"rc": -1}

    def on_publish(_c: Any, _u: Any, _mid: Any, reason: Any, _p: Any) -> None:
        result["rc"] = reason.value
        done.set()

    client.on_publish = on_publish
    client.publish(topic, payload, qos=qos, retain=retain)
    done.wait(timeout)
    return result["rc"]


def wait_for(predicate: Any, timeout: float = 10, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
