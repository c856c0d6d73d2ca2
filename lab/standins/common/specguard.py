"""Check HTTP requests against a vendor's published OpenAPI document.

Stand-ins use this to prove that the automation speaks the vendor's API, not just the
stand-in's: in strict mode every request that does not match the spec is refused and logged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.validation.request import (
    V30RequestBodyValidator,
    V30RequestParametersValidator,
    V30RequestSecurityValidator,
    V31RequestBodyValidator,
    V31RequestParametersValidator,
    V31RequestSecurityValidator,
)
from openapi_core.validation.request.exceptions import MissingRequestBody
from werkzeug.datastructures import Headers, ImmutableMultiDict

# Keys that the EMQX dump adds to operations and schemas; they are not OpenAPI and only
# confuse a strict reader (see specs/SOURCES.md).
NON_STANDARD_KEYS = ("log_meta", "is_template")

# (parameters, body, security) validators by the document's "openapi" major.minor.
VALIDATORS: dict[str, tuple[type[Any], type[Any], type[Any]]] = {
    "3.0": (V30RequestParametersValidator, V30RequestBodyValidator, V30RequestSecurityValidator),
    "3.1": (V31RequestParametersValidator, V31RequestBodyValidator, V31RequestSecurityValidator),
}


@dataclass
class SpecRequest:
    """The request shape openapi-core reads (its Request protocol)."""

    host_url: str
    path: str
    method: str
    body: bytes | None
    content_type: str
    parameters: RequestParameters


@dataclass
class SpecGuard:
    """Validates requests; keeps the violations it saw for tests to read."""

    openapi: OpenAPI
    host_url: str
    validators: tuple[type[Any], type[Any], type[Any]]
    violations: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_file(
        cls, spec_path: Path, host_url: str, *, server_url: str | None = None
    ) -> SpecGuard:
        """Load a spec; ``server_url`` replaces its ``servers`` (e.g. ``/api/v5`` for EMQX)."""
        document = json.loads(spec_path.read_text(encoding="utf-8"))
        _strip_keys(document, NON_STANDARD_KEYS)
        if server_url is not None:
            document["servers"] = [{"url": server_url}]
        # Both vendor documents fail strict spec validation on cosmetic points (SOURCES.md);
        # request validation itself is what matters here.
        openapi = OpenAPI.from_dict(document, config=Config(spec_validator_cls=None))
        validators = VALIDATORS[str(document["openapi"])[:3]]
        return cls(openapi=openapi, host_url=host_url, validators=validators)

    def check(
        self,
        method: str,
        path: str,
        *,
        query: Iterable[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        content_type: str = "application/json",
        check_security: bool = False,
        drop_nulls: bool = False,
    ) -> list[str]:
        """Return the spec violations of one request (empty when it conforms).

        Security is not checked by default: authentication is the stand-in's own business
        (it answers 401 like the vendor), and the specs' security schemes do not model every
        accepted form (e.g. EMQX bearer tokens on every path).

        ``drop_nulls`` removes null-valued keys of a JSON body first: servers such as
        ThingsBoard (Jackson) read ``"label": null`` as an absent field, but their generated
        specs declare no field nullable, so a body echoed back from a GET would otherwise fail.
        """
        if drop_nulls and body and "json" in content_type:
            body = _without_nulls(body)
        request = SpecRequest(
            host_url=self.host_url,
            path=path,
            method=method.lower(),
            body=body or b"",
            content_type=content_type,
            parameters=RequestParameters(
                query=ImmutableMultiDict(list(query)),
                header=Headers(dict(headers or {})),
                cookie=ImmutableMultiDict(),
                path={},
            ),
        )
        # openapi-core's combined validator stops at the first security failure, which
        # would hide a malformed body behind a missing header; run the parts separately.
        parameters, body_, security = (v(self.openapi.spec) for v in self.validators)
        problems = [_describe(e) for e in parameters.iter_errors(request)]
        problems += [
            _describe(e)
            for e in body_.iter_errors(request)
            # An optional body that is absent is fine (a required one raises a subclass);
            # an unknown path is already reported by the parameters pass.
            if type(e) is not MissingRequestBody and _describe(e) not in problems
        ]
        if check_security and any(True for _ in security.iter_errors(request)):
            problems.append("security: no accepted credentials for this operation")
        return problems

    def record(self, method: str, path: str, problems: list[str]) -> None:
        """Keep a violation for the test that later asks the stand-in for its findings."""
        self.violations.append({"method": method.upper(), "path": path, "problems": problems})


def _describe(error: Exception) -> str:
    parts = [f"{type(error).__name__}: {error}"]
    cause = error.__cause__
    while cause is not None:
        details = getattr(cause, "schema_errors", None)
        if details:
            parts.extend(str(getattr(d, "message", d)) for d in details)
        else:
            parts.append(f"{type(cause).__name__}: {cause}")
        cause = cause.__cause__
    return "; ".join(parts)


def _without_nulls(body: bytes) -> bytes:
    try:
        document = json.loads(body)
    except ValueError:
        return body  # not JSON after all: let the validator report it as it is
    return json.dumps(_drop_null_keys(document)).encode()


def _drop_null_keys(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _drop_null_keys(v) for k, v in node.items() if v is not None}
    if isinstance(node, list):
        return [_drop_null_keys(v) for v in node]
    return node


def _strip_keys(node: Any, keys: tuple[str, ...]) -> None:
    if isinstance(node, dict):
        for key in keys:
            node.pop(key, None)
        for value in node.values():
            _strip_keys(value, keys)
    elif isinstance(node, list):
        for value in node:
            _strip_keys(value, keys)
