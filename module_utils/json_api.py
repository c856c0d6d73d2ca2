"""The JSON-over-HTTP core shared by the vendor API clients (emqx_api, tb_api).

Stdlib and ansible.module_utils only (managed nodes may lack ``requests``). Sends JSON or
multipart, counts every request it sends (retries included), and retries with capped
exponential backoff on connection errors, 429 and 5xx. A vendor client adds its
authentication and reads its vendor's error body.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode

from ansible.module_utils.urls import open_url

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class ApiError(Exception):
    """A failed API call, with the vendor's error code and message when it sent them."""

    def __init__(self, status: int | None, code: str, message: str, method: str, path: str):
        super().__init__(f"{method} {path}: HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class JsonApiClient:
    """One base URL; subclasses provide ``auth_headers`` and the vendor's error shape."""

    error_class: type[ApiError] = ApiError
    error_code_key = "code"
    error_message_key = "message"

    def __init__(
        self,
        base_url: str,
        *,
        validate_certs: bool = True,
        timeout: float = 60.0,
        retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base = base_url.rstrip("/")
        self.validate_certs = validate_certs
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sleep = sleep
        self.requests = 0  # every HTTP request sent, retries included

    def auth_headers(self) -> dict[str, str]:
        return {}

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        multipart: tuple[str, str, bytes, str] | None = None,
        expect: Sequence[int] = (200, 201, 204),
        authenticated: bool = True,
    ) -> tuple[int, Any]:
        """Send one call to ``base + path``. ``multipart`` is (field, filename, content,
        content_type). Returns (status, decoded JSON, text or None)."""
        url = self.base + path
        if query:
            url += "?" + urlencode({k: query_value(v) for k, v in query.items()})
        headers = {"Accept": "application/json"}
        if authenticated:
            headers.update(self.auth_headers())
        data: bytes | None = None
        if multipart is not None:
            data, headers["Content-Type"] = encode_multipart(*multipart)
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
                raise self.error_class(None, "CONNECTION_ERROR", str(exc), method, path) from exc
            if status in RETRY_STATUS and attempt <= self.retries:
                self._wait(attempt)
                continue
            decoded = decode(raw)
            if status not in expect:
                code, message = "", raw.decode(errors="replace")[:500]
                if isinstance(decoded, dict):
                    code = str(decoded.get(self.error_code_key, ""))
                    message = str(decoded.get(self.error_message_key, message))
                raise self.error_class(status, code, message, method, path)
            return status, decoded

    def _wait(self, attempt: int) -> None:
        self.sleep(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))


def query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def encode_multipart(
    field: str, filename: str, content: bytes, content_type: str
) -> tuple[bytes, str]:
    boundary = "tinyml-" + secrets.token_hex(16)
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    body = head + content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"
