"""The MQTT topic tree (docs/architecture.md, contract version 1)."""

from __future__ import annotations

ROOT = "tinyml"


def device_topic(device: str, leaf: str) -> str:
    """tinyml/devices/{device}/{leaf}: inference, health, status, alert, cmd, cmd/response,
    ota, ota/result (and raw, only with the debug flag)."""
    return f"{ROOT}/devices/{device}/{leaf}"


def class_ota_topic(device_class: str) -> str:
    return f"{ROOT}/classes/{device_class}/ota"
