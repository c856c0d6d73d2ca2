"""Request plumbing shared by the REST handlers: state, errors, auth, paging."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from lab.standins.common.specguard import SpecGuard

from ..auth import Principal, TokenIssuer
from ..engine.activity import DeviceStates
from ..engine.alarms import AlarmService
from ..engine.engine import RuleEngine
from ..model import JsonDict, id_of, now_ms, page
from ..service import Service
from ..settings import Settings
from ..store import Store
from ..telemetry import TelemetryReader

STATE: web.AppKey[AppState] = web.AppKey("state")
PRINCIPAL = "principal"


@dataclass
class AppState:
    settings: Settings
    store: Store
    service: Service
    tokens: TokenIssuer
    reader: TelemetryReader
    engine: RuleEngine
    states: DeviceStates
    alarms: AlarmService
    guard: SpecGuard | None


def state(request: web.Request) -> AppState:
    return request.app[STATE]


class ApiError(web.HTTPException):
    """TB's ThingsboardErrorResponse: {status, message, errorCode, timestamp}."""

    def __init__(self, status: int, message: str, error_code: int) -> None:
        self.status_code = status
        super().__init__(
            text=json.dumps(
                {
                    "status": status,
                    "message": message,
                    "errorCode": error_code,
                    "timestamp": now_ms(),
                }
            ),
            content_type="application/json",
        )


def bad_request(message: str) -> ApiError:
    return ApiError(400, message, 31)


def not_found() -> ApiError:
    return ApiError(404, "Requested item wasn't found!", 32)


def unauthorized(message: str = "Authentication failed") -> ApiError:
    return ApiError(401, message, 10)


def forbidden() -> ApiError:
    return ApiError(403, "You don't have permission to perform this operation!", 20)


def ok(body: Any) -> web.Response:
    return web.json_response(body, dumps=lambda b: json.dumps(b, separators=(",", ":")))


def principal(request: web.Request, *authorities: str) -> Principal:
    """The caller, refused with 403 unless it has one of ``authorities`` (TB's @PreAuthorize)."""
    caller: Principal = request[PRINCIPAL]
    if authorities and caller.authority not in authorities:
        raise forbidden()
    return caller


def tenant_of(request: web.Request) -> uuid.UUID:
    return principal(request, "TENANT_ADMIN").tenant_id


async def body_json(request: web.Request) -> Any:
    try:
        return json.loads(await request.read() or b"null")
    except ValueError as exc:
        raise bad_request(f"Invalid request body: {exc}") from exc


def path_uuid(request: web.Request, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError as exc:
        raise bad_request(f"Invalid UUID string: {request.match_info[name]}") from exc


def owned(request: web.Request, row_id: uuid.UUID | None, entity_type: str) -> JsonDict:
    """An entity of the caller's tenant, else 404 as TB answers for another tenant's id."""
    body = state(request).store.get(row_id, entity_type)
    if body is None or id_of(body.get("tenantId")) != tenant_of(request):
        raise not_found()
    return body


def paged(request: web.Request, items: list[JsonDict], *, text_key: str = "name") -> JsonDict:
    query = request.query
    try:
        size, number = int(query["pageSize"]), int(query["page"])
    except (KeyError, ValueError) as exc:
        raise bad_request("pageSize and page are required integers") from exc
    return page(
        items,
        size,
        number,
        text_search=query.get("textSearch"),
        text_of=lambda item: str(item.get(text_key) or ""),
        sort_property=query.get("sortProperty"),
        sort_order=query.get("sortOrder"),
    )
