"""What TB gives every new tenant: a "default" device profile and a root rule chain."""

from __future__ import annotations

import uuid

from .model import JsonDict, entity_id

RE = "org.thingsboard.rule.engine."

# The shape of TB's root_rule_chain.json: profile node first, then a type switch that saves
# telemetry and client attributes. The stand-in runs this chain for tenants' devices unless
# their profile names another one.
_ROOT_NODES: list[tuple[str, str, JsonDict]] = [
    (
        RE + "profile.TbDeviceProfileNode",
        "Device Profile Node",
        {"persistAlarmRulesState": False, "fetchAlarmRulesStateOnStart": False},
    ),
    (RE + "filter.TbMsgTypeSwitchNode", "Message Type Switch", {"version": 0}),
    (RE + "telemetry.TbMsgTimeseriesNode", "Save Timeseries", {"defaultTTL": 0}),
    (
        RE + "telemetry.TbMsgAttributesNode",
        "Save Client Attributes",
        {"scope": "CLIENT_SCOPE", "notifyDevice": False},
    ),
    (RE + "action.TbLogNode", "Log Other", {"scriptLang": "TBEL", "tbelScript": "return msg;"}),
]
_ROOT_CONNECTIONS = [
    (0, 1, "Success"),
    (1, 2, "Post telemetry"),
    (1, 3, "Post attributes"),
    (1, 4, "Other"),
]


def root_rule_chain(tenant_id: uuid.UUID) -> JsonDict:
    return {
        "tenantId": entity_id("TENANT", tenant_id),
        "name": "Root Rule Chain",
        "type": "CORE",
        "firstRuleNodeId": None,
        "root": True,
        "debugMode": False,
        "configuration": None,
        "additionalInfo": None,
    }


def root_rule_chain_metadata() -> JsonDict:
    return {
        "firstNodeIndex": 0,
        "nodes": [
            {
                "type": node_type,
                "name": name,
                "debugMode": False,
                "singletonMode": False,
                "configurationVersion": 0,
                "configuration": config,
                "additionalInfo": None,
            }
            for node_type, name, config in _ROOT_NODES
        ],
        "connections": [
            {"fromIndex": a, "toIndex": b, "type": label} for a, b, label in _ROOT_CONNECTIONS
        ],
        "ruleChainConnections": [],
    }


def device_profile(tenant_id: uuid.UUID, name: str, *, default: bool) -> JsonDict:
    return {
        "tenantId": entity_id("TENANT", tenant_id),
        "name": name,
        "description": "Default device profile" if default else None,
        "image": None,
        "type": "DEFAULT",
        "transportType": "DEFAULT",
        "provisionType": "DISABLED",
        "defaultRuleChainId": None,
        "defaultDashboardId": None,
        "defaultQueueName": None,
        "provisionDeviceKey": None,
        "firmwareId": None,
        "softwareId": None,
        "defaultEdgeRuleChainId": None,
        "default": default,
        "profileData": {
            "configuration": {"type": "DEFAULT"},
            "transportConfiguration": {"type": "DEFAULT"},
            "provisionConfiguration": {"type": "DISABLED", "provisionDeviceSecret": None},
            "alarms": None,
        },
    }
