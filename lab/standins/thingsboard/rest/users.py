"""Auth, tenants and users: /api/auth/*, /api/tenant(s), /api/user, /api/noauth/activate."""

from __future__ import annotations

import secrets

from aiohttp import web

from ..auth import check_password, hash_password
from ..model import NULL_UUID, JsonDict, entity_id, id_of
from ..store import UserCredentials
from .common import (
    ApiError,
    bad_request,
    body_json,
    not_found,
    ok,
    paged,
    path_uuid,
    principal,
    state,
    unauthorized,
)

routes = web.RouteTableDef()


def _tokens_for(request: web.Request, user: JsonDict) -> JsonDict:
    app_state = state(request)
    user_id = id_of(user["id"])
    assert user_id is not None
    generation = app_state.store.user_credentials[user_id].token_generation
    return app_state.tokens.pair(user, generation)


@routes.post("/api/auth/login")
async def login(request: web.Request) -> web.Response:
    body = await body_json(request)
    if not isinstance(body, dict):
        raise bad_request("Invalid login request")
    store = state(request).store
    user = store.find("USER", None, str(body.get("username", "")))
    user_id = id_of(user["id"]) if user else None
    creds = store.user_credentials.get(user_id) if user_id else None
    if (
        user is None
        or creds is None
        or not check_password(str(body.get("password")), creds.password_hash)
    ):
        raise unauthorized("Invalid username or password")
    if not creds.enabled:
        raise ApiError(401, "User is not active", 10)
    pair = _tokens_for(request, user)
    return ok({"token": pair["token"], "refreshToken": pair["refreshToken"]})


@routes.post("/api/auth/token")
async def refresh(request: web.Request) -> web.Response:
    body = await body_json(request)
    app_state = state(request)
    caller = app_state.tokens.verify(str((body or {}).get("refreshToken", "")), refresh=True)
    user = app_state.store.get(caller.user_id, "USER") if caller else None
    creds = app_state.store.user_credentials.get(caller.user_id) if caller else None
    if (
        caller is None
        or user is None
        or creds is None
        or caller.generation != creds.token_generation
    ):
        raise unauthorized("Invalid refresh token")
    pair = _tokens_for(request, user)
    return ok({"token": pair["token"], "refreshToken": pair["refreshToken"]})


@routes.post("/api/auth/logout")
async def logout(_request: web.Request) -> web.Response:
    return web.Response(status=200)


@routes.get("/api/auth/user")
async def current_user(request: web.Request) -> web.Response:
    user = state(request).store.get(principal(request).user_id, "USER")
    if user is None:
        raise not_found()
    return ok(user)


@routes.post("/api/auth/changePassword")
async def change_password(request: web.Request) -> web.Response:
    caller = principal(request)
    body = await body_json(request)
    store = state(request).store
    creds = store.user_credentials[caller.user_id]
    if not isinstance(body, dict) or not check_password(
        str(body.get("currentPassword")), creds.password_hash
    ):
        raise bad_request("Current password doesn't match!")
    new = str(body.get("newPassword") or "")
    if len(new) < 6:
        # TB's default password policy: at least 6 characters.
        raise bad_request("Password must be at least 6 characters long!")
    if check_password(new, creds.password_hash):
        raise bad_request("New password should be different from existing!")
    creds.password_hash = hash_password(new)
    creds.token_generation += 1  # tokens issued before the change stop working
    await store.save_user_credentials(caller.user_id, creds)
    user = store.get(caller.user_id, "USER")
    assert user is not None
    return ok(_tokens_for(request, user))


# ---- tenants ---------------------------------------------------------------------------


@routes.get("/api/tenants")
async def list_tenants(request: web.Request) -> web.Response:
    principal(request, "SYS_ADMIN")
    return ok(paged(request, state(request).store.all("TENANT"), text_key="title"))


@routes.post("/api/tenant")
async def save_tenant(request: web.Request) -> web.Response:
    principal(request, "SYS_ADMIN")
    body = await body_json(request)
    if not isinstance(body, dict) or not body.get("title"):
        raise bad_request("Tenant title should be specified!")
    return ok(await state(request).service.create_tenant(body))


@routes.get("/api/tenant/{tenantId}")
async def get_tenant(request: web.Request) -> web.Response:
    caller = principal(request, "SYS_ADMIN", "TENANT_ADMIN")
    tenant_id = path_uuid(request, "tenantId")
    if caller.authority == "TENANT_ADMIN" and caller.tenant_id != tenant_id:
        raise not_found()
    tenant = state(request).store.get(tenant_id, "TENANT")
    if tenant is None:
        raise not_found()
    return ok(tenant)


# ---- users -----------------------------------------------------------------------------


@routes.get("/api/tenant/{tenantId}/users")
async def tenant_users(request: web.Request) -> web.Response:
    principal(request, "SYS_ADMIN")
    tenant_id = path_uuid(request, "tenantId")
    users = [
        u for u in state(request).store.all("USER", tenant_id) if u["authority"] == "TENANT_ADMIN"
    ]
    return ok(paged(request, users, text_key="email"))


@routes.post("/api/user")
async def save_user(request: web.Request) -> web.Response:
    caller = principal(request, "SYS_ADMIN", "TENANT_ADMIN")
    body = await body_json(request)
    if not isinstance(body, dict) or not body.get("email"):
        raise bad_request("User email should be specified!")
    app_state = state(request)
    authority = body.get("authority")
    if caller.authority == "SYS_ADMIN":
        tenant_id = id_of(body.get("tenantId"))
        if authority != "TENANT_ADMIN" or app_state.store.get(tenant_id, "TENANT") is None:
            raise bad_request("A system administrator creates tenant administrators of a tenant")
    else:
        tenant_id = caller.tenant_id
        if authority not in ("TENANT_ADMIN", "CUSTOMER_USER"):
            raise bad_request(f"Invalid authority {authority}")
    assert tenant_id is not None
    existing = app_state.store.get(id_of(body.get("id")), "USER")
    body["tenantId"] = entity_id("TENANT", tenant_id)
    body.setdefault("customerId", entity_id("CUSTOMER", NULL_UUID))
    body.setdefault("additionalInfo", None)
    body["name"] = body["email"]
    user = await app_state.store.save("USER", body)
    if existing is None:
        user_id = id_of(user["id"])
        assert user_id is not None
        # sendActivationMail=false: the activation link is fetched through the API instead.
        await app_state.store.save_user_credentials(
            user_id, UserCredentials(activate_token=secrets.token_urlsafe(22))
        )
    return ok(user)


@routes.get("/api/user/{userId}")
async def get_user(request: web.Request) -> web.Response:
    caller = principal(request, "SYS_ADMIN", "TENANT_ADMIN")
    user = state(request).store.get(path_uuid(request, "userId"), "USER")
    if user is None or (
        caller.authority == "TENANT_ADMIN" and id_of(user["tenantId"]) != caller.tenant_id
    ):
        raise not_found()
    return ok(user)


@routes.get("/api/user/{userId}/activationLink")
async def activation_link(request: web.Request) -> web.Response:
    principal(request, "SYS_ADMIN", "TENANT_ADMIN")
    user_id = path_uuid(request, "userId")
    creds = state(request).store.user_credentials.get(user_id)
    if creds is None or not creds.activate_token:
        raise bad_request("User is already activated!")
    base = f"{request.scheme}://{request.host}"
    return web.Response(
        text=f"{base}/api/noauth/activate?activateToken={creds.activate_token}",
        content_type="text/plain",
    )


@routes.post("/api/noauth/activate")
async def activate(request: web.Request) -> web.Response:
    body = await body_json(request)
    store = state(request).store
    token = str((body or {}).get("activateToken", ""))
    password = str((body or {}).get("password") or "")
    found = next(
        (
            (uid, c)
            for uid, c in store.user_credentials.items()
            if token and c.activate_token == token
        ),
        None,
    )
    if found is None:
        raise not_found()
    user_id, creds = found
    if len(password) < 6:
        raise bad_request("Password must be at least 6 characters long!")
    creds.password_hash = hash_password(password)
    creds.activate_token = None
    creds.enabled = True
    await store.save_user_credentials(user_id, creds)
    user = store.get(user_id, "USER")
    assert user is not None
    return ok(_tokens_for(request, user))
