"""A small client for the EMQX 5 REST API, shared by the emqx_* modules.

Stdlib and ansible.module_utils only (managed nodes may lack ``requests``). Authenticates
with an API key (HTTP Basic), speaks JSON and multipart, pages through lists, counts its
requests, and retries with capped exponential backoff on connection errors, 429 and 5xx.
Errors carry EMQX's ``code`` and ``message``.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlencode

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url

API_PREFIX = "/api/v5"
PAGE_LIMIT = 10000  # the largest page EMQX's list endpoints accept
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class EmqxError(Exception):
    """A failed API call, with EMQX's error code and message when it sent them."""

    def __init__(self, status: int | None, code: str, message: str, method: str, path: str):
        super().__init__(f"{method} {path}: HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def quote_segment(value: str) -> str:
    """One path segment, e.g. password_based:built_in_database -> password_based%3A..."""
    return quote(value, safe="")


class EmqxClient:
    def __init__(
        self,
        api_url: str,
        api_key: str,
        api_secret: str,
        *,
        validate_certs: bool = True,
        timeout: float = 60.0,
        retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        base = api_url.rstrip("/")
        self.base = base if base.endswith(API_PREFIX) else base + API_PREFIX
        token = base64.b64encode(f"{api_key}:{api_secret}".encode()).decode()
        self.auth = f"Basic {token}"
        self.validate_certs = validate_certs
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sleep = sleep
        self.requests = 0  # every HTTP request sent, retries included

    # -- core ------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        multipart: tuple[str, str, bytes, str] | None = None,
        expect: Sequence[int] = (200, 201, 204),
    ) -> tuple[int, Any]:
        """Send one call; ``path`` is relative to /api/v5. ``multipart`` is
        (field, filename, content, content_type). Returns (status, decoded JSON or None)."""
        url = self.base + path
        if query:
            url += "?" + urlencode({k: _query_value(v) for k, v in query.items()})
        headers = {"Authorization": self.auth, "Accept": "application/json"}
        data: bytes | None = None
        if multipart is not None:
            data, headers["Content-Type"] = _multipart(*multipart)
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        attempt = 0
        while True:
            attempt += 1
            self.requests += 1
            try:
                response = open_url(
                    url,
                    data=data,
                    headers=headers,
                    method=method,
                    validate_certs=self.validate_certs,
                    timeout=self.timeout,
                    follow_redirects="none",
                )
                status = response.getcode()
                raw = response.read()
            except HTTPError as exc:
                status, raw = exc.code, exc.read() if exc.fp is not None else b""
            except (URLError, OSError) as exc:
                if attempt <= self.retries:
                    self._wait(attempt)
                    continue
                raise EmqxError(None, "CONNECTION_ERROR", str(exc), method, path) from exc
            if status in RETRY_STATUS and attempt <= self.retries:
                self._wait(attempt)
                continue
            decoded = _decode(raw)
            if status not in expect:
                code, message = "", raw.decode(errors="replace")[:500]
                if isinstance(decoded, dict):
                    code = str(decoded.get("code", ""))
                    message = str(decoded.get("message", message))
                raise EmqxError(status, code, message, method, path)
            return status, decoded

    def _wait(self, attempt: int) -> None:
        self.sleep(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))

    # -- helpers ---------------------------------------------------------------------------
    def get_all(self, path: str, query: Mapping[str, Any] | None = None) -> Iterator[Any]:
        """Every item of a paged list (``{data, meta:{hasnext}}``), PAGE_LIMIT per request."""
        page = 1
        while True:
            _, body = self.request(
                "GET", path, query={**(query or {}), "page": page, "limit": PAGE_LIMIT}
            )
            data = body.get("data", []) if isinstance(body, dict) else []
            yield from data
            meta = body.get("meta", {}) if isinstance(body, dict) else {}
            if not data or not meta.get("hasnext", False):
                return
            page += 1


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def _multipart(field: str, filename: str, content: bytes, content_type: str) -> tuple[bytes, str]:
    boundary = "emqx-" + secrets.token_hex(16)
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    body = head + content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def common_argument_spec() -> dict[str, Any]:
    """Connection options every emqx_* module takes."""
    return {
        "api_url": {"type": "str", "required": True},
        "api_key": {"type": "str", "required": True},
        "api_secret": {"type": "str", "required": True, "no_log": True},
        "validate_certs": {"type": "bool", "default": True},
        "timeout": {"type": "float", "default": 60.0},
    }


def client_from_params(params: Mapping[str, Any]) -> EmqxClient:
    return EmqxClient(
        params["api_url"],
        params["api_key"],
        params["api_secret"],
        validate_certs=params["validate_certs"],
        timeout=params["timeout"],
    )


def exit_compact(module: Any, result: dict[str, Any], shown_args: dict[str, Any]) -> None:
    """exit_json for fleet-sized parameters.

    Ansible masks every no_log value (here: one password per user) in every returned
    string, O(strings x secrets): with 10,000 users and the default echo of all module
    arguments that takes minutes. So the module returns a compact ``invocation`` (no user
    list), and only the secrets that actually occur in the output are kept for masking,
    which keeps Ansible's guarantee (none of them is ever shown) at a fraction of the cost.
    """
    result = {**result, "invocation": {"module_args": shown_args}}
    text = json.dumps(result)
    module.no_log_values = {
        value
        for value in module.no_log_values
        # JSON escapes some characters: keep such secrets, whatever the cost.
        if value in text
        or not value.isascii()
        or any(c in value for c in '"\\/')
        or any(ord(c) < 32 for c in value)
    }
    module.exit_json(**result)


class FleetModule(AnsibleModule):  # type: ignore[misc]
    """AnsibleModule that logs a compact invocation to the target's syslog/journal.

    The stock one logs str() of every parameter, sanitized against every no_log value:
    with 10,000 users that alone takes about 15 s. Lists are logged as their length here;
    no_log parameters are left out as usual.
    """

    def _log_invocation(self) -> None:
        shown = []
        for name, value in self.params.items():
            if self.argument_spec.get(name, {}).get("no_log"):
                shown.append(f"{name}=NOT_LOGGING_PARAMETER")
            elif isinstance(value, list):
                shown.append(f"{name}=<{len(value)} entries>")
            else:
                shown.append(f"{name}={value}")
        self.log("Invoked with " + " ".join(shown))
