"""POST /api/device/bulk_import: TB's CSV import (BulkImportRequest -> BulkImportResult).

Everything of one request is written in a handful of batched statements, so 10,000 devices
take seconds, not 10,000 round trips.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..model import JsonDict, KvEntry, id_of, now_ms
from ..service import BadRequestError, Service
from ..store import ConflictError
from .common import bad_request, body_json, ok, state, tenant_of

ATTRIBUTE_SCOPES = {"SERVER_ATTRIBUTE": "SERVER_SCOPE", "SHARED_ATTRIBUTE": "SHARED_SCOPE"}
MQTT_COLUMNS = {
    "MQTT_CLIENT_ID": "clientId",
    "MQTT_USER_NAME": "userName",
    "MQTT_PASSWORD": "password",
}


def _cell_value(text: str) -> Any:
    """TB parses CSV cells to boolean, long, double or string."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return text


class _Batch:
    def __init__(self) -> None:
        self.devices: dict[str, JsonDict] = {}
        self.credentials: dict[str, JsonDict] = {}
        self.attributes: dict[str, list[tuple[uuid.UUID, list[KvEntry]]]] = defaultdict(list)
        self.telemetry: list[tuple[uuid.UUID, list[KvEntry]]] = []


async def bulk_import(request: web.Request) -> web.Response:
    tenant_id = tenant_of(request)
    body = await body_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("mapping"), dict):
        raise bad_request("BulkImportRequest needs file and mapping")
    mapping = body["mapping"]
    columns = mapping.get("columns") or []
    lines = list(
        csv.reader(
            io.StringIO(str(body.get("file") or "")), delimiter=str(mapping.get("delimiter") or ",")
        )
    )
    first_line = 1
    if mapping.get("header"):
        lines, first_line = lines[1:], 2
    result: JsonDict = {"created": 0, "updated": 0, "errors": 0, "errorsList": []}
    batch = _Batch()
    service = state(request).service
    for number, cells in enumerate(lines, start=first_line):
        if not any(cell.strip() for cell in cells):
            continue
        try:
            row = _Row.parse(columns, cells)
            created = await _line(
                service, tenant_id, row, update=bool(mapping.get("update")), batch=batch
            )
        except (BadRequestError, ConflictError, ValueError) as exc:
            result["errors"] += 1
            result["errorsList"].append(f"Line {number}: {exc}")
            continue
        result["created" if created else "updated"] += 1
    await _write(request, batch)
    return ok(result)


@dataclass
class _Row:
    """One CSV line sorted by what its columns mean (BulkImportColumnType)."""

    fields: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, list[KvEntry]] = field(default_factory=lambda: defaultdict(list))
    telemetry: list[KvEntry] = field(default_factory=list)
    mqtt: JsonDict = field(default_factory=dict)

    @classmethod
    def parse(cls, columns: list[JsonDict], cells: list[str]) -> _Row:
        row = cls()
        for column, cell in zip(columns, cells, strict=False):
            kind, value = str(column.get("type")), cell.strip()
            if kind in ATTRIBUTE_SCOPES and value:
                entry = KvEntry(str(column["key"]), _cell_value(value))
                row.attributes[ATTRIBUTE_SCOPES[kind]].append(entry)
            elif kind == "TIMESERIES" and value:
                row.telemetry.append(KvEntry(str(column["key"]), _cell_value(value)))
            elif kind in MQTT_COLUMNS and value:
                row.mqtt[MQTT_COLUMNS[kind]] = value
            else:
                row.fields[kind] = value
        return row


def _apply_fields(device: JsonDict, fields: dict[str, str]) -> JsonDict:
    if fields.get("TYPE"):
        device["type"] = fields["TYPE"]
        device.pop("deviceProfileId", None)
    if "LABEL" in fields:
        device["label"] = fields["LABEL"] or None
    info = dict(device.get("additionalInfo") or {})
    if "IS_GATEWAY" in fields:
        info["gateway"] = fields["IS_GATEWAY"].lower() == "true"
    if "DESCRIPTION" in fields:
        info["description"] = fields["DESCRIPTION"]
    device["additionalInfo"] = info or None
    return device


async def _line(
    service: Service, tenant_id: uuid.UUID, row: _Row, *, update: bool, batch: _Batch
) -> bool:
    name = row.fields.get("NAME")
    if not name:
        raise ValueError("Device name is required")
    existing = service.store.find("DEVICE", tenant_id, name)
    pending = batch.devices.get(name)
    if (existing is not None or pending is not None) and not update:
        raise ValueError(f"Device with name {name} already exists")
    device = _apply_fields(dict(existing or pending or {"name": name}), row.fields)
    profile = await service.resolve_profile(tenant_id, device)
    device = service.store.prepare("DEVICE", service.device_json(tenant_id, device, profile))
    device_id = id_of(device["id"])
    assert device_id is not None
    credentials = None
    if row.mqtt:
        credentials = {"credentialsType": "MQTT_BASIC", "credentialsValue": json.dumps(row.mqtt)}
    token = row.fields.get("ACCESS_TOKEN") or None
    if existing is None or credentials is not None or token is not None:
        creds = service.credentials_json(device_id, credentials, token)
        other = batch.credentials.get(creds["credentialsId"])
        if other is not None and other["deviceId"] != creds["deviceId"]:
            raise ValueError("Device credentials are already assigned to another device!")
        batch.credentials[creds["credentialsId"]] = service.store.prepare(
            "DEVICE_CREDENTIALS", creds
        )
    batch.devices[name] = device
    for scope, entries in row.attributes.items():
        batch.attributes[scope].append((device_id, entries))
    if row.telemetry:
        batch.telemetry.append((device_id, row.telemetry))
    return existing is None


async def _write(request: web.Request, batch: _Batch) -> None:
    app_state = state(request)
    store = app_state.store
    await store.save_many("DEVICE", list(batch.devices.values()))
    await store.save_many("DEVICE_CREDENTIALS", list(batch.credentials.values()))
    for scope, items in batch.attributes.items():
        await store.save_attributes_bulk(scope, items)
    writer = app_state.reader.writer
    for device_id, entries in batch.telemetry:
        await writer.add(device_id, now_ms(), entries)
