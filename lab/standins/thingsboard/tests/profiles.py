"""Request bodies shared by the tests: a TB 4.2 device profile with alarm rules, a rule chain."""

from __future__ import annotations

import uuid
from typing import Any

RE = "org.thingsboard.rule.engine."


def numeric(key: str, operation: str, value: float) -> dict[str, Any]:
    return {
        "key": {"type": "TIME_SERIES", "key": key},
        "valueType": "NUMERIC",
        "value": None,
        "predicate": {
            "type": "NUMERIC",
            "operation": operation,
            "value": {"defaultValue": value, "userValue": None, "dynamicValue": None},
        },
    }


def alarm_profile(
    name: str, *, duration_s: int, rule_chain_id: dict[str, str] | None
) -> dict[str, Any]:
    """Anomaly alarm: anomaly_score > 0.8 for ``duration_s`` raises MAJOR; < 0.5 clears it."""
    return {
        "name": name,
        "type": "DEFAULT",
        "transportType": "DEFAULT",
        "provisionType": "DISABLED",
        "description": "TinyML devices of one class",
        "defaultRuleChainId": rule_chain_id,
        "profileData": {
            "configuration": {"type": "DEFAULT"},
            "transportConfiguration": {"type": "DEFAULT"},
            "provisionConfiguration": {"type": "DISABLED", "provisionDeviceSecret": None},
            "alarms": [
                {
                    "id": "anomaly-alarm",
                    "alarmType": "Anomaly",
                    "propagate": False,
                    "createRules": {
                        "MAJOR": {
                            "condition": {
                                "condition": [numeric("anomaly_score", "GREATER", 0.8)],
                                "spec": {
                                    "type": "DURATION",
                                    "unit": "SECONDS",
                                    "predicate": {
                                        "defaultValue": duration_s,
                                        "userValue": None,
                                        "dynamicValue": None,
                                    },
                                },
                            },
                            "schedule": None,
                            "alarmDetails": "score ${anomaly_score}",
                        }
                    },
                    "clearRule": {
                        "condition": {
                            "condition": [numeric("anomaly_score", "LESS", 0.5)],
                            "spec": {"type": "SIMPLE"},
                        },
                    },
                }
            ],
        },
    }


def tinyml_rule_chain(mqtt_port: int) -> dict[str, Any]:
    """Profile alarms -> alert topic on the external broker; first activity -> node relation."""
    chain_id = str(uuid.uuid4())
    nodes = [
        (
            RE + "profile.TbDeviceProfileNode",
            "Device profile",
            {"persistAlarmRulesState": False, "fetchAlarmRulesStateOnStart": False},
        ),
        (RE + "filter.TbMsgTypeSwitchNode", "Type switch", {"version": 0}),
        (RE + "telemetry.TbMsgTimeseriesNode", "Save telemetry", {"defaultTTL": 0}),
        (
            RE + "mqtt.TbMqttNode",
            "Alert to device",
            {
                "topicPattern": "tinyml/devices/${deviceName}/alert",
                "host": "127.0.0.1",
                "port": mqtt_port,
                "connectTimeoutSec": 10,
                "clientId": "tb-rule-engine",
                "appendClientIdSuffix": False,
                "cleanSession": True,
                "retainedMessage": False,
                "ssl": False,
                "protocolVersion": "MQTT_3_1_1",
                "parseToPlainText": False,
                "credentials": {"type": "anonymous"},
            },
        ),
        (
            RE + "metadata.TbGetAttributesNode",
            "Node attribute",
            {
                "serverAttributeNames": ["node"],
                "clientAttributeNames": [],
                "sharedAttributeNames": [],
                "latestTsKeyNames": [],
                "tellFailureIfAbsent": True,
                "fetchTo": "METADATA",
            },
        ),
        (
            RE + "action.TbCreateRelationNode",
            "Node contains device",
            {
                "direction": "FROM",
                "entityType": "ASSET",
                "entityNamePattern": "${ss_node}",
                "entityTypePattern": "node",
                "relationType": "Contains",
                "createEntityIfNotExists": True,
                "removeCurrentRelations": False,
                "changeOriginatorToRelatedEntity": False,
            },
        ),
        (RE + "transform.TbTransformMsgNode", "Unknown to the stand-in", {"scriptLang": "TBEL"}),
        (
            RE + "action.TbCreateAlarmNode",
            "Offline",
            {
                "alarmType": "Device offline",
                "severity": "WARNING",
                "propagate": False,
                "useMessageAlarmData": False,
                "overwriteAlarmDetails": False,
                "scriptLang": "TBEL",
                "alarmDetailsBuildTbel": "return {};",
            },
        ),
        (
            RE + "action.TbClearAlarmNode",
            "Online again",
            {
                "alarmType": "Device offline",
                "scriptLang": "TBEL",
                "alarmDetailsBuildTbel": "return {};",
            },
        ),
    ]
    connections = [
        (0, 1, "Success"),
        (0, 3, "Alarm Created"),
        (0, 3, "Alarm Updated"),
        (0, 3, "Alarm Cleared"),
        (1, 2, "Post telemetry"),
        (1, 4, "Activity Event"),
        (4, 5, "Success"),
        (1, 6, "Other"),
        (1, 7, "Inactivity Event"),
        (1, 8, "Activity Event"),
        (7, 3, "Created"),
        (8, 3, "Cleared"),
    ]
    return {
        "ruleChains": [
            {
                "id": {"entityType": "RULE_CHAIN", "id": chain_id},
                "name": "TinyML",
                "type": "CORE",
                "root": False,
                "debugMode": False,
            }
        ],
        "metadata": [
            {
                "ruleChainId": {"entityType": "RULE_CHAIN", "id": chain_id},
                "firstNodeIndex": 0,
                "nodes": [
                    {
                        "type": t,
                        "name": n,
                        "configuration": c,
                        "debugMode": False,
                        "singletonMode": False,
                        "configurationVersion": 0,
                        "additionalInfo": {"layoutX": 100, "layoutY": 100},
                    }
                    for t, n, c in nodes
                ],
                "connections": [
                    {"fromIndex": a, "toIndex": b, "type": t} for a, b, t in connections
                ],
                "ruleChainConnections": [],
            }
        ],
    }
