"""plugins/filter/emqx_filters.py: node labels and the broker ACL of docs/architecture.md."""

from __future__ import annotations

import re
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from tests.conftest import REPO_ROOT, load_source

emqx_filters = load_source("plugins/filter/emqx_filters.py")


def authorization_section() -> str:
    text = (REPO_ROOT / "docs" / "architecture.md").read_text()
    start = text.index("### Broker authorization")
    return text[start : text.index("\n## ", start)]


def test_dns_labels() -> None:
    assert emqx_filters.emqx_dns_label("lab-vm1") == "lab-vm1"
    assert emqx_filters.emqx_dns_label("EMQX1.example.com") == "emqx1-example-com"
    assert emqx_filters.emqx_dns_label("10.0.0.5") == "10-0-0-5"
    with pytest.raises(AnsibleFilterError):
        emqx_filters.emqx_dns_label("___")


def test_device_rules_are_the_contract() -> None:
    devices = [{"name": "lab-vm2-vibration-00007", "password": "pw", "class": "vibration"}]
    assert emqx_filters.emqx_device_acl(devices) == [
        {
            "username": "lab-vm2-vibration-00007",
            "rules": [
                {
                    "topic": "tinyml/devices/lab-vm2-vibration-00007/#",
                    "permission": "allow",
                    "action": "all",
                },
                {
                    "topic": "tinyml/classes/vibration/ota",
                    "permission": "allow",
                    "action": "subscribe",
                },
            ],
        }
    ]
    assert emqx_filters.emqx_device_users(devices) == [
        {"user_id": "lab-vm2-vibration-00007", "password": "pw", "is_superuser": False}
    ]
    section = authorization_section()
    assert "`tinyml/devices/{device}/#`" in section
    assert "`tinyml/classes/{class}/ota`" in section


def test_bridge_rules_are_the_contract() -> None:
    (entry,) = emqx_filters.emqx_bridge_acl("tinyml-bridge")
    assert entry["username"] == "tinyml-bridge"
    section = authorization_section()
    bridge = section[section.index("bridge user") :]
    subscribe = bridge[bridge.index("subscribe") : bridge.index("publish")]
    publish = bridge[bridge.index("publish") : bridge.index("operator")]
    documented = {("subscribe", t) for t in re.findall(r"`(tinyml/[^`]+)`", subscribe)} | {
        ("publish", t) for t in re.findall(r"`(tinyml/[^`]+)`", publish)
    }
    rules = {(r["action"], r["topic"]) for r in entry["rules"]}
    assert rules == documented
    assert all(r["permission"] == "allow" for r in entry["rules"])


def test_probe_rules_stay_in_their_subtree() -> None:
    (entry,) = emqx_filters.emqx_probe_acl("tinyml-probe")
    assert entry["rules"] == [{"topic": "tinyml/probe/#", "permission": "allow", "action": "all"}]
    assert "`tinyml/probe/#`" in authorization_section()


@pytest.mark.parametrize(
    "device",
    [
        {"name": "bad/name", "password": "SECRET-PW", "class": "c"},
        {"name": "lab-vm2-vibration-+", "password": "SECRET-PW", "class": "c"},
        {"name": "-leading-dash", "password": "SECRET-PW", "class": "c"},
        {"name": "ok-name", "password": "SECRET-PW", "class": "a/b"},
        {"name": "ok-name", "password": "SECRET-PW", "class": "#"},
        {"name": "ok-name", "class": "c"},
        "not-a-mapping",
    ],
)
def test_bad_devices_are_refused(device: Any) -> None:
    with pytest.raises(AnsibleFilterError) as caught:
        emqx_filters.emqx_device_acl([device])
    assert "SECRET-PW" not in str(caught.value)


def test_host_address_prefers_the_inventory_then_the_facts() -> None:
    hostvars = {
        "a": {"emqx_mqtt_address": "10.0.0.1", "ansible_facts": {}},
        "b": {"emqx_mqtt_address": "", "ansible_facts": {"default_ipv4": {"address": "10.0.0.2"}}},
        "c": {"ansible_facts": {}},
    }
    assert emqx_filters.emqx_host_address("a", hostvars) == "10.0.0.1"
    assert emqx_filters.emqx_host_address("b", hostvars) == "10.0.0.2"
    with pytest.raises(AnsibleFilterError, match="host c"):
        emqx_filters.emqx_host_address("c", hostvars)


def test_ten_thousand_devices_are_quick() -> None:
    devices = [
        {"name": f"lab-vm2-vibration-{i:05d}", "password": f"pw-{i}", "class": "vibration"}
        for i in range(1, 10_001)
    ]
    assert len(emqx_filters.emqx_device_users(devices)) == 10_000
    assert len(emqx_filters.emqx_device_acl(devices)) == 10_000
