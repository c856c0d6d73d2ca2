"""The aiohttp application: spec guard, JWT auth, error mapping, and the route tables."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from ..service import BadRequestError, NotFoundError
from ..store import ConflictError
from . import entities, rule_chains, telemetry, users
from .common import PRINCIPAL, STATE, AppState, bad_request, not_found, ok, state, unauthorized

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Reachable without a token, as in TB's security config.
PUBLIC = ("/api/auth/login", "/api/auth/token", "/api/noauth/")

# Known spec defect: the 4.3 spec declares these JSON bodies as text/plain, but TB's controller
# reads them as `@RequestBody JsonNode`, which Spring only accepts as application/json (text/plain
# would get 415 from the real server). The guard checks such a body as the text the spec wants.
TEXT_AS_JSON = re.compile(r"^/api/plugins/telemetry/[^/]+/[^/]+(/(attributes|timeseries)/[^/]+)?$")


@web.middleware
async def spec_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Check every /api request against the vendor spec; in strict mode refuse what fails."""
    app_state = state(request)
    guard = app_state.guard
    if guard is not None and request.path.startswith("/api/"):
        content_type = request.headers.get("Content-Type", "application/json")
        if request.method == "POST" and TEXT_AS_JSON.match(request.path):
            content_type = "text/plain"
        problems = guard.check(
            request.method,
            request.path,
            query=list(request.query.items()),
            headers=dict(request.headers),
            body=await request.read(),
            content_type=content_type,
            drop_nulls=True,
        )
        if problems:
            guard.record(request.method, request.path, problems)
            log.warning("Spec violation %s %s: %s", request.method, request.path, problems)
            if app_state.settings.spec_strict:
                raise bad_request(
                    "Request does not conform to the ThingsBoard API spec: " + "; ".join(problems)
                )
    return await handler(request)


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if path.startswith("/api/") and not path.startswith(PUBLIC):
        header = request.headers.get("X-Authorization", "")
        scheme, _, token = header.partition(" ")
        app_state = state(request)
        caller = app_state.tokens.verify(token) if scheme == "Bearer" else None
        creds = app_state.store.user_credentials.get(caller.user_id) if caller else None
        if caller is None or creds is None or not creds.enabled:
            raise unauthorized()
        if caller.generation != creds.token_generation:
            raise unauthorized("Token is outdated")
        request[PRINCIPAL] = caller
    return await handler(request)


@web.middleware
async def map_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except (BadRequestError, ConflictError) as exc:
        raise bad_request(str(exc)) from exc
    except NotFoundError as exc:
        raise not_found() from exc


async def login_page(_request: web.Request) -> web.Response:
    # The official k8s manifests probe GET /login; the real answer is the UI's HTML.
    return web.Response(
        text="<!DOCTYPE html><html><head><title>ThingsBoard</title></head>"
        "<body><tb-root></tb-root></body></html>",
        content_type="text/html",
    )


async def violations(request: web.Request) -> web.Response:
    guard = state(request).guard
    return ok(guard.violations if guard is not None else [])


async def clear_violations(request: web.Request) -> web.Response:
    """Return the recorded violations and forget them (a test that provokes one on purpose)."""
    guard = state(request).guard
    found = list(guard.violations) if guard is not None else []
    if guard is not None:
        guard.violations.clear()
    return ok(found)


def create_app(app_state: AppState) -> web.Application:
    app = web.Application(
        middlewares=[map_errors, authenticate, spec_guard], client_max_size=64 * 1024 * 1024
    )
    app[STATE] = app_state
    app.router.add_get("/login", login_page)
    app.router.add_get("/_standin/violations", violations)
    app.router.add_delete("/_standin/violations", clear_violations)
    for routes in (users.routes, entities.routes, telemetry.routes, rule_chains.routes):
        app.add_routes(routes)
    return app
