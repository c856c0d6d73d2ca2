"""Filters of the emqx role: node labels and the broker ACL of docs/architecture.md.

The topic tree and who may do what on it are a contract (docs/architecture.md, "Broker
authorization"); this module is its only translation into EMQX built-in database rules, so
the role, the device helper and the tests all use the same rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

# docs/architecture.md: device names, which are also MQTT usernames and client ids.
DEVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# Class names become one topic level: no wildcards, no separators.
DEVICE_CLASS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

# The bridge user (ThingsBoard IoT Gateway and rule chain). EMQX authorizes a shared
# subscription $share/<group>/<filter> against <filter>, so these rules cover the gateway's
# $share/tb-gateway/... subscriptions too.
BRIDGE_SUBSCRIBE = (
    "tinyml/devices/+/inference",
    "tinyml/devices/+/health",
    "tinyml/devices/+/status",
    "tinyml/devices/+/ota/result",
    "tinyml/devices/+/cmd/response",
)
BRIDGE_PUBLISH = (
    "tinyml/devices/+/alert",
    "tinyml/devices/+/cmd",
    "tinyml/devices/+/ota",
    "tinyml/classes/+/ota",
)
# The role's cluster probe: its own subtree, nothing else.
PROBE_TOPIC = "tinyml/probe/#"


def emqx_dns_label(host: str) -> str:
    """An inventory host name as one DNS label: lower case, runs of anything but letters,
    digits and '-' become '-' (``emqx1.example.com`` -> ``emqx1-example-com``)."""
    label = re.sub(r"[^a-z0-9-]+", "-", str(host).lower()).strip("-")
    if not label or len(label) > 63:
        raise AnsibleFilterError(f"host {host}: cannot make a DNS label of this name")
    return label


def emqx_host_address(host: str, hostvars: Mapping[str, Any]) -> str:
    """The address MQTT clients use for an EMQX host: its ``emqx_mqtt_address`` when the
    inventory sets one, else the IPv4 address of its default route (from its facts)."""
    variables = hostvars[host]
    if variables.get("emqx_mqtt_address"):
        return str(variables["emqx_mqtt_address"])
    try:
        return str(variables["ansible_facts"]["default_ipv4"]["address"])
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError(
            f"host {host}: no facts to find its address; gather facts or set emqx_mqtt_address"
        ) from exc


def _rule(topic: str, action: str) -> dict[str, str]:
    return {"topic": topic, "permission": "allow", "action": action}


def device_rules(name: str, device_class: str) -> list[dict[str, str]]:
    """Publish and subscribe under the device's own subtree; subscribe to its class's OTA
    topic. Nothing else: the broker denies what no rule allows (no_match = deny)."""
    return [
        _rule(f"tinyml/devices/{name}/#", "all"),
        _rule(f"tinyml/classes/{device_class}/ota", "subscribe"),
    ]


def _check_devices(devices: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    checked = []
    for index, device in enumerate(devices):
        if not isinstance(device, Mapping):
            raise AnsibleFilterError(f"emqx_devices[{index}]: not a mapping")
        missing = {"name", "password", "class"} - set(device)
        if missing:
            name = device.get("name", f"entry {index}")
            raise AnsibleFilterError(f"device {name}: missing {', '.join(sorted(missing))}")
        if not DEVICE_NAME.match(str(device["name"])):
            raise AnsibleFilterError(
                f"device {device['name']!r}: the name must match {DEVICE_NAME.pattern}"
            )
        if not DEVICE_CLASS.match(str(device["class"])):
            raise AnsibleFilterError(
                f"device {device['name']}: class {device['class']!r} must match "
                f"{DEVICE_CLASS.pattern}"
            )
        checked.append(device)
    return checked


def emqx_device_users(devices: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """[{name, password, class}] -> emqx_users entries (never superusers)."""
    return [
        {"user_id": str(d["name"]), "password": str(d["password"]), "is_superuser": False}
        for d in _check_devices(devices)
    ]


def emqx_device_acl(devices: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """[{name, password, class}] -> emqx_acl entries."""
    return [
        {"username": str(d["name"]), "rules": device_rules(str(d["name"]), str(d["class"]))}
        for d in _check_devices(devices)
    ]


def emqx_bridge_acl(username: str) -> list[dict[str, Any]]:
    rules = [_rule(t, "subscribe") for t in BRIDGE_SUBSCRIBE]
    rules += [_rule(t, "publish") for t in BRIDGE_PUBLISH]
    return [{"username": username, "rules": rules}]


def emqx_probe_acl(username: str) -> list[dict[str, Any]]:
    return [{"username": username, "rules": [_rule(PROBE_TOPIC, "all")]}]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "emqx_dns_label": emqx_dns_label,
            "emqx_host_address": emqx_host_address,
            "emqx_device_users": emqx_device_users,
            "emqx_device_acl": emqx_device_acl,
            "emqx_bridge_acl": emqx_bridge_acl,
            "emqx_probe_acl": emqx_probe_acl,
        }
