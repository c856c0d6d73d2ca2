#!/usr/bin/python
"""Ansible module: prove that an MQTT message crosses the broker cluster (or that a login works)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: emqx_mqtt_probe
short_description: Publish through one MQTT broker node and receive on another, or check a login
description:
  - Connects a subscriber to I(subscriber), subscribes to I(topic) (QoS 1), connects a
    publisher to I(publisher) and publishes a unique payload (QoS 1) until the subscriber
    receives it or I(attempts) run out. Fails when the message never arrives.
  - With I(connect_only) it only connects to I(publisher) and reports the CONNACK code,
    without failing on a refusal (to check whether a password works).
  - A small MQTT 3.1.1 client on the Python standard library, so it runs on any managed
    node with python3 (no paho). TLS with the CA given as text.
  - Publishes one message to a probe topic and keeps nothing; it runs in check mode too and
    never reports a change.
options:
  publisher:
    description: Broker the message is published through.
    type: dict
    required: true
    suboptions:
      host:
        description: Address or name.
        type: str
        required: true
      port:
        description: MQTT port.
        type: int
        default: 8883
  subscriber:
    description: Broker the subscriber connects to (default I(publisher)).
    type: dict
    suboptions:
      host:
        description: Address or name.
        type: str
        required: true
      port:
        description: MQTT port.
        type: int
        default: 8883
  username:
    description: MQTT username of both connections.
    type: str
    required: true
  password:
    description: Its password.
    type: str
    required: true
  tls:
    description: Connect with TLS.
    type: bool
    default: true
  ca_cert:
    description: PEM text of the CA that signed the brokers' certificates (default the system CAs).
    type: str
  validate_certs:
    description: Verify the broker certificate and its name (the host given).
    type: bool
    default: true
  topic:
    description: Topic of the probe message (the user must be allowed to publish and subscribe it).
    type: str
    default: tinyml/probe/cluster
  connect_only:
    description: Only connect to I(publisher) and report the CONNACK code.
    type: bool
    default: false
  attempts:
    description: Messages published (one per second of waiting) before giving up.
    type: int
    default: 10
  timeout:
    description: Seconds to wait for each network step.
    type: float
    default: 10
author: TinyML fleet project
"""

EXAMPLES = r"""
- name: A message published through node 1 reaches a subscriber on node 3
  emqx_mqtt_probe:
    publisher: {host: 10.0.0.11, port: 8883}
    subscriber: {host: 10.0.0.13, port: 8883}
    username: tinyml-probe
    password: "{{ emqx_probe_password }}"
    ca_cert: "{{ lookup('ansible.builtin.file', emqx_tls_ca_path) }}"
    topic: tinyml/probe/cluster
  no_log: true
"""

RETURN = r"""
received:
  description: The subscriber received the probe message (always false with I(connect_only)).
  returned: always
  type: bool
attempts:
  description: Messages published until one arrived.
  returned: always
  type: int
latency_ms:
  description: Milliseconds from the publish that arrived to its delivery.
  returned: when received
  type: float
connack:
  description:
    - CONNACK return code of the publisher connection.
    - 0 accepted, 4 bad username or password, 5 not authorized.
  returned: always
  type: int
"""

import contextlib  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import ssl  # noqa: E402
import struct  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK, DISCONNECT = 1, 2, 3, 4, 8, 9, 14


class ProbeError(Exception):
    pass


def _string(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return struct.pack("!H", len(raw)) + raw


def _remaining_length(length: int) -> bytes:
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def packet(kind: int, flags: int, body: bytes) -> bytes:
    return bytes([(kind << 4) | flags]) + _remaining_length(len(body)) + body


class Connection:
    """One MQTT 3.1.1 connection (clean session, QoS 0/1 only)."""

    def __init__(self, host: str, port: int, params: dict[str, Any]) -> None:
        self.timeout = float(params["timeout"])
        sock = socket.create_connection((host, port), timeout=self.timeout)
        if params["tls"]:
            context = ssl.create_default_context(cadata=params.get("ca_cert") or None)
            if not params["validate_certs"]:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            sock = context.wrap_socket(sock, server_hostname=host)
        self.sock = sock
        self.buffer = b""
        self.next_id = 1

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(packet(DISCONNECT, 0, b""))
        self.sock.close()

    def _read(self, count: int, deadline: float) -> bytes:
        while len(self.buffer) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ProbeError("the broker closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def read_packet(self, wait: float) -> tuple[int, int, bytes]:
        deadline = time.monotonic() + wait
        first = self._read(1, deadline)[0]
        length, shift = 0, 0
        while True:
            byte = self._read(1, deadline)[0]
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        return first >> 4, first & 0x0F, self._read(length, deadline)

    def expect(self, kind: int) -> bytes:
        deadline = time.monotonic() + self.timeout
        while True:
            got, _, body = self.read_packet(max(0.01, deadline - time.monotonic()))
            if got == kind:
                return body

    def connect(self, client_id: str, username: str, password: str) -> int:
        header = _string("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 30)
        payload = _string(client_id) + _string(username) + _string(password)
        self.sock.sendall(packet(CONNECT, 0, header + payload))
        return self.expect(CONNACK)[1]

    def packet_id(self) -> int:
        value, self.next_id = self.next_id, self.next_id % 65535 + 1
        return value

    def subscribe(self, topic: str) -> int:
        body = struct.pack("!H", self.packet_id()) + _string(topic) + bytes([1])
        self.sock.sendall(packet(SUBSCRIBE, 2, body))
        return self.expect(SUBACK)[2]

    def publish(self, topic: str, payload: bytes) -> None:
        body = _string(topic) + struct.pack("!H", self.packet_id()) + payload
        self.sock.sendall(packet(PUBLISH, 2, body))
        self.expect(PUBACK)

    def wait_message(self, payload: bytes, wait: float) -> bool:
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                kind, flags, body = self.read_packet(left)
            except TimeoutError:
                return False
            if kind != PUBLISH:
                continue
            topic_length = struct.unpack("!H", body[:2])[0]
            rest = body[2 + topic_length :]
            if (flags >> 1) & 3:
                self.sock.sendall(packet(PUBACK, 0, rest[:2]))
                rest = rest[2:]
            if rest == payload:
                return True


def client_id(role: str) -> str:
    return f"tinyml-probe-{role}-{os.urandom(4).hex()}"


def run(params: dict[str, Any]) -> dict[str, Any]:
    pub_at = params["publisher"]
    sub_at = params["subscriber"] or pub_at
    user, password = params["username"], params["password"]
    result: dict[str, Any] = {"changed": False, "received": False, "attempts": 0}
    publisher = Connection(pub_at["host"], pub_at["port"], params)
    try:
        result["connack"] = publisher.connect(client_id("pub"), user, password)
        if params["connect_only"]:
            return result
        if result["connack"] != 0:
            raise ProbeError(f"publisher connection refused: CONNACK {result['connack']}")
        subscriber = Connection(sub_at["host"], sub_at["port"], params)
        try:
            code = subscriber.connect(client_id("sub"), user, password)
            if code != 0:
                raise ProbeError(f"subscriber connection refused: CONNACK {code}")
            granted = subscriber.subscribe(params["topic"])
            if granted >= 0x80:
                raise ProbeError(f"subscription to {params['topic']} refused")
            for attempt in range(1, params["attempts"] + 1):
                payload = f"probe {os.urandom(8).hex()}".encode()
                started = time.monotonic()
                publisher.publish(params["topic"], payload)
                result["attempts"] = attempt
                if subscriber.wait_message(payload, 1.0 if attempt < params["attempts"] else 3.0):
                    result["received"] = True
                    result["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
                    break
        finally:
            subscriber.close()
    finally:
        publisher.close()
    return result


def main() -> None:
    endpoint = {
        "type": "dict",
        "options": {
            "host": {"type": "str", "required": True},
            "port": {"type": "int", "default": 8883},
        },
    }
    module = AnsibleModule(
        argument_spec={
            "publisher": {**endpoint, "required": True},
            "subscriber": endpoint,
            "username": {"type": "str", "required": True},
            "password": {"type": "str", "required": True, "no_log": True},
            "tls": {"type": "bool", "default": True},
            "ca_cert": {"type": "str"},
            "validate_certs": {"type": "bool", "default": True},
            "topic": {"type": "str", "default": "tinyml/probe/cluster"},
            "connect_only": {"type": "bool", "default": False},
            "attempts": {"type": "int", "default": 10},
            "timeout": {"type": "float", "default": 10.0},
        },
        supports_check_mode=True,
    )
    try:
        result = run(module.params)
    except (OSError, ssl.SSLError, TimeoutError, ProbeError) as exc:
        module.fail_json(msg=f"MQTT probe failed: {type(exc).__name__}: {exc}", received=False)
    if not module.params["connect_only"] and not result["received"]:
        module.fail_json(
            msg=f"the probe message did not arrive after {result['attempts']} attempts", **result
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
