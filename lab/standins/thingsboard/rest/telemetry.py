"""/api/plugins/telemetry: attributes and time series of the caller's entities."""

from __future__ import annotations

import json
import uuid

from aiohttp import web

from ..engine.msg import TbMsg
from ..model import JsonDict, now_ms, parse_kv
from ..store import SCOPES
from .common import bad_request, ok, owned, state, tenant_of

routes = web.RouteTableDef()
BASE = "/api/plugins/telemetry/{entityType}/{entityId}"


def _target(
    request: web.Request, entity_type: str | None = None, raw_id: str | None = None
) -> tuple[str, uuid.UUID]:
    entity_type = entity_type or request.match_info["entityType"]
    raw_id = raw_id or request.match_info["entityId"]
    try:
        entity_id = uuid.UUID(raw_id)
    except ValueError as exc:
        raise bad_request(f"Invalid UUID string: {raw_id}") from exc
    if not (entity_type == "TENANT" and entity_id == tenant_of(request)):
        owned(request, entity_id, entity_type)
    return entity_type, entity_id


def _keys(request: web.Request) -> list[str] | None:
    keys = [k.strip() for k in request.query.get("keys", "").split(",") if k.strip()]
    keys += request.query.getall("key", [])
    return keys or None


def _strict(request: web.Request) -> bool:
    return request.query.get("useStrictDataTypes", "false").lower() == "true"


async def _json_object(request: web.Request) -> JsonDict:
    # TB reads the body as a string whatever its Content-Type (the 4.3 spec says text/plain).
    try:
        body = json.loads(await request.read() or b"null")
    except ValueError as exc:
        raise bad_request(f"Invalid JSON: {exc}") from exc
    if not isinstance(body, dict) or not body:
        raise bad_request("Request payload should be a non-empty JSON object")
    return body


async def _save_attributes(
    request: web.Request, scope: str, entity_type: str | None = None, raw_id: str | None = None
) -> web.Response:
    if scope not in ("SERVER_SCOPE", "SHARED_SCOPE"):
        raise bad_request(f"Invalid attribute scope: {scope}")
    entity_type, entity_id = _target(request, entity_type, raw_id)
    body = await _json_object(request)
    app_state = state(request)
    await app_state.store.save_attributes(entity_id, scope, parse_kv(body, type_cast=False))
    # TB notifies the rule engine of REST attribute changes (msg type ATTRIBUTES_UPDATED).
    entity = app_state.store.get(entity_id) or {}
    meta = {"scope": scope}
    if entity_type == "DEVICE":
        meta.update({"deviceName": str(entity.get("name")), "deviceType": str(entity.get("type"))})
    app_state.engine.enqueue(
        TbMsg("ATTRIBUTES_UPDATED", tenant_of(request), entity_type, entity_id, meta, body)
    )
    return web.Response(status=200)


@routes.post(BASE + "/attributes/{scope}")
async def save_attributes(request: web.Request) -> web.Response:
    return await _save_attributes(request, request.match_info["scope"])


@routes.post("/api/plugins/telemetry/{deviceId}/{scope}")
async def save_device_attributes(request: web.Request) -> web.Response:
    # The old device-only form: /api/plugins/telemetry/{deviceId}/{scope}.
    return await _save_attributes(
        request, request.match_info["scope"], "DEVICE", request.match_info["deviceId"]
    )


def _attribute_values(request: web.Request, scopes: list[str]) -> list[JsonDict]:
    _entity_type, entity_id = _target(request)
    wanted = _keys(request)
    values = []
    for scope in scopes:
        for key, (entry, ts) in state(request).store.get_attributes(entity_id, scope).items():
            if wanted is None or key in wanted:
                values.append({"lastUpdateTs": ts, "key": key, "value": entry.value})
    return values


@routes.get(BASE + "/values/attributes/{scope}")
async def attributes_by_scope(request: web.Request) -> web.Response:
    scope = request.match_info["scope"]
    if scope not in SCOPES:
        raise bad_request(f"Invalid attribute scope: {scope}")
    return ok(_attribute_values(request, [scope]))


@routes.get(BASE + "/values/attributes")
async def attributes(request: web.Request) -> web.Response:
    return ok(_attribute_values(request, list(SCOPES)))


async def _history(request: web.Request) -> web.Response:
    _entity_type, entity_id = _target(request)
    query = request.query
    keys = _keys(request)
    if not keys:
        raise bad_request("keys are required")
    if query.get("agg", "NONE") != "NONE":
        raise bad_request("The stand-in only serves agg=NONE")
    try:
        start, end = int(query["startTs"]), int(query["endTs"])
        limit = int(query.get("limit", "100"))
    except (KeyError, ValueError) as exc:
        raise bad_request("startTs and endTs are required integers") from exc
    reader = state(request).reader
    return ok(
        await reader.history(
            entity_id,
            keys,
            start,
            end,
            limit=limit,
            ascending=query.get("orderBy", "DESC") == "ASC",
            strict=_strict(request),
        )
    )


@routes.get(BASE + "/values/timeseries")
async def timeseries(request: web.Request) -> web.Response:
    # The 4.2 server serves history on this path when startTs and endTs are given.
    if "startTs" in request.query and "endTs" in request.query:
        return await _history(request)
    _entity_type, entity_id = _target(request)
    reader = state(request).reader
    return ok(await reader.latest(entity_id, _keys(request), strict=_strict(request)))


@routes.get(BASE + "/values/timeseries/history")
async def timeseries_history(request: web.Request) -> web.Response:
    return await _history(request)


@routes.get(BASE + "/keys/timeseries")
async def timeseries_keys(request: web.Request) -> web.Response:
    _entity_type, entity_id = _target(request)
    return ok(await state(request).reader.keys(entity_id))


@routes.post(BASE + "/timeseries/{scope}")
async def save_timeseries(request: web.Request) -> web.Response:
    _entity_type, entity_id = _target(request)
    try:
        body = json.loads(await request.read() or b"null")
    except ValueError as exc:
        raise bad_request(f"Invalid JSON: {exc}") from exc
    items = body if isinstance(body, list) else [body]
    writer = state(request).reader.writer
    for item in items:
        if not isinstance(item, dict):
            raise bad_request("Telemetry must be a JSON object or a list of objects")
        if "ts" in item and isinstance(item.get("values"), dict):
            await writer.add(entity_id, int(item["ts"]), parse_kv(item["values"]))
        else:
            await writer.add(entity_id, now_ms(), parse_kv(item))
    return web.Response(status=200)
