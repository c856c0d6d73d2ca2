"""A client for the ThingsBoard CE REST API, shared by the tb_* modules.

Logs in with a user's credentials (JWT in ``X-Authorization: Bearer``), logs in again once
when a token is refused (401: expired, or invalidated by a password change), pages through
ThingsBoard's lists, and inherits json_api's retries on 429/5xx and its request counter.
Errors carry ThingsBoard's ``errorCode`` and ``message``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from ansible.module_utils.json_api import ApiError, JsonApiClient

PAGE_SIZE = 1000


class TbError(ApiError):
    """A failed ThingsBoard API call."""


class TbClient(JsonApiClient):
    error_class = TbError
    error_code_key = "errorCode"

    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        *,
        validate_certs: bool = True,
        timeout: float = 60.0,
        retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(
            url,
            validate_certs=validate_certs,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            max_backoff=max_backoff,
            sleep=sleep,
        )
        self.username = username
        self.password = password
        self.token: str | None = None

    def login(self) -> None:
        _, body = self.request(
            "POST",
            "/api/auth/login",
            body={"username": self.username, "password": self.password},
            authenticated=False,
        )
        self.token = body["token"]

    def can_log_in(self, username: str, password: str) -> bool:
        """Whether ThingsBoard accepts these credentials (401 means no)."""
        try:
            self.request(
                "POST",
                "/api/auth/login",
                body={"username": username, "password": password},
                authenticated=False,
            )
        except TbError as error:
            if error.status == 401:
                return False
            raise
        return True

    def auth_headers(self) -> dict[str, str]:
        if self.token is None:
            self.login()
        return {"X-Authorization": f"Bearer {self.token}"}

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
        result: tuple[int, Any]
        try:
            result = super().request(
                method,
                path,
                query=query,
                body=body,
                multipart=multipart,
                expect=expect,
                authenticated=authenticated,
            )
        except TbError as error:
            if not (authenticated and error.status == 401 and self.token is not None):
                raise
        else:
            return result
        # The token was refused: log in again, once.
        self.token = None
        result = super().request(
            method, path, query=query, body=body, multipart=multipart, expect=expect
        )
        return result

    def get(self, path: str, query: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path, query=query)[1]

    def post(self, path: str, body: Any, query: Mapping[str, Any] | None = None) -> Any:
        return self.request("POST", path, body=body, query=query)[1]

    def find(self, path: str, query: Mapping[str, Any] | None = None) -> Any:
        """GET that answers None for 404 (a lookup by name that found nothing)."""
        try:
            return self.get(path, query)
        except TbError as error:
            if error.status == 404:
                return None
            raise

    def get_all(self, path: str, query: Mapping[str, Any] | None = None) -> Iterator[Any]:
        """Every item of a PageData list, PAGE_SIZE per request."""
        page = 0
        while True:
            body = self.get(path, {**(query or {}), "pageSize": PAGE_SIZE, "page": page})
            yield from body.get("data", [])
            if not body.get("hasNext", False):
                return
            page += 1


def entity_id(entity: Mapping[str, Any]) -> str:
    """The UUID of an entity returned by ThingsBoard."""
    identifier: str = entity["id"]["id"]
    return identifier


def common_argument_spec() -> dict[str, Any]:
    """Connection options every tb_* module takes."""
    return {
        "url": {"type": "str", "required": True},
        "username": {"type": "str", "required": True},
        "password": {"type": "str", "required": True, "no_log": True},
        "validate_certs": {"type": "bool", "default": True},
        "timeout": {"type": "float", "default": 60.0},
    }


def client_from_params(params: Mapping[str, Any]) -> TbClient:
    return TbClient(
        params["url"],
        params["username"],
        params["password"],
        validate_certs=params["validate_certs"],
        timeout=params["timeout"],
    )
