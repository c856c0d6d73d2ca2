"""Filters of the tb_provision role: ThingsBoard alarm rules and device rows from the fleet.

``tb_alarm_rules`` turns a class's alarm rules in the fleet's simple form
(``{type, severity, key, above, for_s, clear_below}``) into ThingsBoard 4.2 device profile
alarms (``profileData.alarms``: a NUMERIC ``GREATER`` condition on a time series key, with a
DURATION spec when ``for_s`` > 0, and a clear rule ``LESS`` than ``clear_below``).

``tb_provision_devices`` and ``tb_provision_emqx_devices`` read the devices files the fleet
role published as facts (``fleet_host_document`` of each simulator host) and make the rows of
the tb_fleet_devices module and the emqx role's device helper.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

# Alarm ids inside a profile only need to be stable: the same class and type, the same id.
ALARM_NAMESPACE = uuid.UUID("0f8a3c1e-5b7d-4e59-9a61-2c4f1d8e7b30")


def _value(number: float | int) -> dict[str, Any]:
    return {"defaultValue": number, "userValue": None, "dynamicValue": None}


def _numeric(key: str, operation: str, number: float) -> dict[str, Any]:
    return {
        "key": {"type": "TIME_SERIES", "key": key},
        "valueType": "NUMERIC",
        "value": None,
        "predicate": {"type": "NUMERIC", "operation": operation, "value": _value(number)},
    }


def tb_alarm_rules(alarms: Sequence[Mapping[str, Any]], profile: str = "") -> list[dict[str, Any]]:
    """ThingsBoard 4.2 ``profileData.alarms`` for the fleet's simple alarm rules."""
    rules = []
    for alarm in alarms:
        kind = str(alarm["type"])
        key = str(alarm.get("key", "anomaly_score"))
        above, below = float(alarm["above"]), float(alarm["clear_below"])
        duration = int(alarm.get("for_s", 0))
        spec: dict[str, Any] = {"type": "SIMPLE"}
        details = f"{key} ${{{key}}} above {above:g}"
        if duration > 0:
            spec = {"type": "DURATION", "unit": "SECONDS", "predicate": _value(duration)}
            details += f" for {duration} s"
        rules.append(
            {
                "id": str(uuid.uuid5(ALARM_NAMESPACE, f"{profile}/{kind}")),
                "alarmType": kind,
                "propagate": False,
                "propagateToOwner": False,
                "propagateToTenant": False,
                "propagateRelationTypes": None,
                "createRules": {
                    str(alarm.get("severity", "MAJOR")): {
                        "condition": {"condition": [_numeric(key, "GREATER", above)], "spec": spec},
                        "schedule": None,
                        "alarmDetails": details,
                        "dashboardId": None,
                    }
                },
                "clearRule": {
                    "condition": {
                        "condition": [_numeric(key, "LESS", below)],
                        "spec": {"type": "SIMPLE"},
                    },
                    "schedule": None,
                    "alarmDetails": f"{key} ${{{key}}} below {below:g}",
                    "dashboardId": None,
                },
            }
        )
    return rules


def tb_provision_profiles(classes: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """tb_device_profiles entries, one per resolved fleet class (profile name = class name:
    the gateway sets a device's profile from its payload's ``class``)."""
    profiles = []
    for cls in classes:
        card = cls.get("card") or {}
        description = (
            f"TinyML class {cls['name']}: {cls['model']} {cls['model_version']} on"
            f" {cls.get('hardware')} (arena {card.get('arena_bytes')} B, flash"
            f" {card.get('flash_bytes')} B); offline after {cls['offline_after_s']} s"
        )
        profiles.append(
            {
                "name": cls["name"],
                "description": description,
                "alarms": tb_alarm_rules(cls.get("alarms") or [], cls["name"]),
            }
        )
    return profiles


def tb_provision_node_assets(hosts: Iterable[str]) -> list[dict[str, str]]:
    """tb_assets entries: one per simulator host (the swarm node its simulator runs on)."""
    return [
        {
            "name": host,
            "label": f"Swarm node {host}",
            "description": "Swarm node running TinyML device simulators",
        }
        for host in hosts
    ]


def _documents(hosts: Iterable[str], hostvars: Mapping[str, Any]) -> list[tuple[str, Any]]:
    documents = []
    for host in hosts:
        try:
            document = hostvars[host]["fleet_host_document"]
        except KeyError:
            raise AnsibleFilterError(
                f"host {host}: no fleet_host_document; the fleet role must run on the"
                " simulator hosts first (playbooks/provision.yml does)"
            ) from None
        documents.append((host, document))
    return documents


def tb_provision_devices(
    hosts: Iterable[str],
    hostvars: Mapping[str, Any],
    classes: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """tb_fleet_devices rows: type = class (the device profile), server attributes class,
    node (the simulator host, also the name of its swarm-node asset), model, model_version,
    hardware and inactivityTimeout (ms, the class's offline_after_s)."""
    by_name = {c["name"]: c for c in classes}
    rows = []
    for host, document in _documents(hosts, hostvars):
        for device in document["devices"]:
            name, device_class = device["name"], device["class"]
            cls = document["classes"][device_class]
            resolved = by_name.get(device_class)
            if resolved is None:
                raise AnsibleFilterError(f"device {name}: class {device_class} is not in the fleet")
            rows.append(
                {
                    "name": name,
                    "type": device_class,
                    "attributes": {
                        "class": device_class,
                        "node": host,
                        "model": cls["model"],
                        "model_version": cls["model_version"],
                        "hardware": cls.get("hardware") or "",
                        "inactivityTimeout": int(resolved["offline_after_s"]) * 1000,
                    },
                }
            )
    return rows


def tb_provision_emqx_devices(
    hosts: Iterable[str], hostvars: Mapping[str, Any]
) -> list[dict[str, str]]:
    """The emqx role's device helper input: [{name, password, class}]."""
    return [
        {"name": d["name"], "password": d["password"], "class": d["class"]}
        for _, document in _documents(hosts, hostvars)
        for d in document["devices"]
    ]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "tb_alarm_rules": tb_alarm_rules,
            "tb_provision_profiles": tb_provision_profiles,
            "tb_provision_node_assets": tb_provision_node_assets,
            "tb_provision_devices": tb_provision_devices,
            "tb_provision_emqx_devices": tb_provision_emqx_devices,
        }
