"""A small client for the EMQX 5 REST API, shared by the emqx_* modules.

Authenticates with an API key (HTTP Basic) and pages through EMQX's lists; the HTTP core
(JSON and multipart, retries with capped backoff, request counting) is json_api's. Errors
carry EMQX's ``code`` and ``message``.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import quote

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.json_api import ApiError, JsonApiClient

API_PREFIX = "/api/v5"
PAGE_LIMIT = 10000  # the largest page EMQX's list endpoints accept


class EmqxError(ApiError):
    """A failed EMQX API call, with EMQX's error code and message when it sent them."""


def quote_segment(value: str) -> str:
    """One path segment, e.g. password_based:built_in_database -> password_based%3A..."""
    return quote(value, safe="")


class EmqxClient(JsonApiClient):
    """Paths are relative to /api/v5; authenticated with an API key (HTTP Basic)."""

    error_class = EmqxError

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
        super().__init__(
            base if base.endswith(API_PREFIX) else base + API_PREFIX,
            validate_certs=validate_certs,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            max_backoff=max_backoff,
            sleep=sleep,
        )
        token = base64.b64encode(f"{api_key}:{api_secret}".encode()).decode()
        self.auth = f"Basic {token}"

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": self.auth}

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


class FleetModule(AnsibleModule):
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
