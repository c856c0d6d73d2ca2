"""Command requests (tinyml/devices/{device}/cmd) and their responses."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from jsonschema import ValidationError

from tinyml_sim.schemas import validate

METHODS = ("ping", "get_status", "set_rate")


class CommandError(Exception):
    """A request the device refuses; it is answered with {"ok": false, "error": ...}."""

    def __init__(self, code: str, message: str, request_id: str | None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


@dataclass(frozen=True, slots=True)
class Command:
    id: str
    method: str
    params: dict[str, Any]


def parse_command(payload: bytes | bytearray) -> Command:
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CommandError("bad_json", f"not JSON: {exc}", None) from exc
    raw_id = doc.get("id") if isinstance(doc, dict) else None
    request_id = raw_id if isinstance(raw_id, str) else None
    if (
        isinstance(doc, dict)
        and isinstance(doc.get("method"), str)
        and (doc["method"] not in METHODS)
    ):
        raise CommandError("unknown_method", f"unknown method {doc['method']!r}", request_id)
    try:
        validate("cmd-request", doc)
    except ValidationError as exc:
        code = "bad_params" if "params" in list(exc.absolute_path)[:1] else "bad_request"
        raise CommandError(code, exc.message, request_id) from exc
    return Command(doc["id"], doc["method"], doc.get("params", {}))


def ok_response(request_id: str, result: dict[str, Any]) -> bytes:
    return json.dumps({"id": request_id, "ok": True, "result": result}).encode()


def error_response(error: CommandError) -> bytes:
    body = {"code": error.code, "message": error.message}
    return json.dumps({"id": error.request_id, "ok": False, "error": body}).encode()
