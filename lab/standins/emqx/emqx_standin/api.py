"""The EMQX v5 REST API subset, with EMQX's request and response shapes (spec 5.8.6)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import csv
import email.parser
import email.policy
import io
import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .cluster import COOKIE_HEADER, cluster_token
from .config import VERSION
from .passwords import admin_hash, admin_verify, mosquitto_hash

if TYPE_CHECKING:
    from .node import Node

LOG = logging.getLogger("emqx_standin.api")
AUTHN_ID = "password_based:built_in_database"
TOKEN_TTL = 60 * 60  # dashboard.token_expired_time default 60m
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PUBLIC = {("GET", "/api/v5/status"), ("POST", "/api/v5/login"), ("GET", "/status")}


def error(status: int, code: str, message: str, **headers: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status, headers=headers)


def unauthorized(code: str, message: str) -> web.Response:
    # EMQX (minirest) adds this header to its 401s.
    return error(401, code, message, **{"WWW-Authenticate": 'Basic Realm="minirest-server"'})


class Api:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.tokens: dict[str, tuple[str, float]] = {}
        self.requests: dict[str, int] = {}
        self.app = web.Application(client_max_size=256 * 1024 * 1024, middlewares=[self.guard])
        r = self.app.router
        v5 = "/api/v5"
        users = f"{v5}/authentication/{{id}}/users"
        rules = f"{v5}/authorization/sources/built_in_database/rules/users"
        r.add_get(f"{v5}/status", self.status)
        r.add_get("/status", self.status)
        r.add_post(f"{v5}/login", self.login)
        r.add_post(f"{v5}/logout", self.logout)
        r.add_post(f"{v5}/users/{{username}}/change_pwd", self.change_pwd)
        r.add_get(f"{v5}/nodes", self.nodes)
        r.add_get(f"{v5}/nodes/{{node}}", self.node_one)
        r.add_get(users, self.users_list)
        r.add_post(users, self.users_create)
        r.add_get(users + "/{user_id}", self.user_get)
        r.add_put(users + "/{user_id}", self.user_put)
        r.add_delete(users + "/{user_id}", self.user_delete)
        r.add_post(f"{v5}/authentication/{{id}}/import_users", self.import_users)
        r.add_get(rules, self.rules_list)
        r.add_post(rules, self.rules_create)
        r.add_get(rules + "/{username}", self.rules_get)
        r.add_put(rules + "/{username}", self.rules_put)
        r.add_delete(rules + "/{username}", self.rules_delete)
        r.add_get(f"{v5}/authorization/settings", self.authz_settings)
        r.add_post(f"{v5}/publish", self.publish)
        r.add_post(f"{v5}/publish/bulk", self.publish_bulk)
        r.add_get("/_standin/violations", self.violations)
        r.add_delete("/_standin/violations", self.violations_clear)
        r.add_get("/_standin/requests", self.request_counts)
        r.add_get("/_standin/info", self.internal_info)
        r.add_get("/_standin/entries", self.internal_entries)
        r.add_post("/_standin/sync", self.internal_sync)
        r.add_route("*", v5 + "/{tail:.*}", self.not_found)

    # -- middleware: spec check, then authentication ---------------------------------------
    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path.startswith("/_standin/"):
            return await handler(request)
        key = f"{request.method} {request.match_info.route.resource.canonical if request.match_info.route.resource else path}"  # noqa: E501
        self.requests[key] = self.requests.get(key, 0) + 1
        guard = self.node.guard
        if guard is not None and path.startswith("/api/v5"):
            body = await request.read()
            query = list(request.query.items())
            problems = await asyncio.to_thread(
                guard.check,
                request.method,
                request.rel_url.raw_path,
                query=query,
                headers=dict(request.headers),
                body=body or None,
                content_type=request.headers.get("Content-Type", "application/json"),
            )
            if problems:
                guard.record(request.method, request.rel_url.raw_path, problems)
                LOG.warning("spec violation: %s %s: %s", request.method, path, problems)
                return error(400, "BAD_REQUEST", "stand-in spec check: " + "; ".join(problems))
        if (request.method, path) not in PUBLIC:
            refused = self.authenticate(request)
            if refused is not None:
                return refused
        return await handler(request)

    def authenticate(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                key, _, secret = base64.b64decode(value).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return unauthorized("BAD_API_KEY_OR_SECRET", "Check api_key/api_secret")
            expected = self.node.api_keys.get(key)
            if expected is None or not secrets.compare_digest(expected, secret):
                return unauthorized("BAD_API_KEY_OR_SECRET", "Check api_key/api_secret")
            request["actor"] = key
            return None
        if scheme.lower() == "bearer":
            entry = self.tokens.get(value.strip())
            if entry is None:
                return unauthorized("BAD_TOKEN", "Get a token by POST /login")
            if entry[1] < time.time():
                self.tokens.pop(value.strip(), None)
                return unauthorized("TOKEN_TIME_OUT", "Token expired, get new token by POST /login")
            request["actor"] = entry[0]
            request["token"] = value.strip()
            return None
        return unauthorized("AUTHORIZATION_HEADER_ERROR", "Support authorization: basic/bearer ")

    async def not_found(self, _request: web.Request) -> web.Response:
        return error(404, "NOT_FOUND", "Request Path Not Found")

    # -- status, dashboard -----------------------------------------------------------------
    async def status(self, _request: web.Request) -> web.Response:
        if _request.query.get("format") == "json":
            return web.json_response(
                {
                    "node_name": self.node.settings.node,
                    "rel_vsn": VERSION,
                    "broker_status": "started",
                    "app_status": "running",
                }
            )
        text = f"Node {self.node.settings.node} is started\nemqx is running"
        return web.Response(text=text, content_type="text/plain")

    async def login(self, request: web.Request) -> web.Response:
        body = await _json(request)
        username = str(body.get("username", "")) if isinstance(body, dict) else ""
        password = str(body.get("password", "")) if isinstance(body, dict) else ""
        record = self.node.store.get("admins", username)
        if record is None or not admin_verify(password, record):
            return error(401, "BAD_USERNAME_OR_PWD", "Auth failed")
        token = secrets.token_urlsafe(32)
        self.tokens[token] = (username, time.time() + TOKEN_TTL)
        return web.json_response(
            {"token": token, "version": VERSION, "license": {"edition": "opensource"}}
        )

    async def logout(self, request: web.Request) -> web.Response:
        token = request.get("token")
        if token is None:
            return unauthorized("BAD_TOKEN", "Logout needs a bearer token")
        self.tokens.pop(token, None)
        return web.Response(status=204)

    async def change_pwd(self, request: web.Request) -> web.Response:
        username = request.match_info["username"]
        body = await _json(request)
        if not isinstance(body, dict):
            return error(400, "BAD_REQUEST", "Invalid JSON body")
        record = self.node.store.get("admins", username)
        if record is None:
            return error(404, "USER_NOT_FOUND", "User not found")
        old, new = str(body.get("old_pwd", "")), str(body.get("new_pwd", ""))
        if not admin_verify(old, record):
            return error(400, "BAD_REQUEST", "password_error")
        problem = _password_policy(new)
        if problem:
            return error(400, "BAD_REQUEST", problem)
        await self.node.commit("admins", [(username, {**record, **admin_hash(new)})])
        # EMQX drops the user's tokens when the password changes.
        for token, (owner, _) in list(self.tokens.items()):
            if owner == username:
                del self.tokens[token]
        return web.Response(status=204)

    # -- nodes -----------------------------------------------------------------------------
    async def nodes(self, _request: web.Request) -> web.Response:
        return web.json_response(await self.node.cluster_nodes())

    async def node_one(self, request: web.Request) -> web.Response:
        name = request.match_info["node"]
        for entry in await self.node.cluster_nodes():
            if entry["node"] == name:
                return web.json_response(entry)
        return error(404, "NOT_FOUND", "Node not found")

    # -- authentication users --------------------------------------------------------------
    def _authenticator(self, request: web.Request) -> web.Response | None:
        if request.match_info["id"] != AUTHN_ID or not self.node.settings.authn_builtin:
            return error(404, "NOT_FOUND", "Authenticator not found")
        return None

    async def users_list(self, request: web.Request) -> web.Response:
        missing = self._authenticator(request)
        if missing:
            return missing
        page, limit, bad = _paging(request)
        if bad:
            return bad
        like = request.query.get("like_user_id")
        superuser = request.query.get("is_superuser")
        rows = [
            {"user_id": name, "is_superuser": bool(user.get("is_superuser"))}
            for name, user in self.node.store.items("users")
            if (like is None or like in name)
            and (superuser is None or str(bool(user.get("is_superuser"))).lower() == superuser)
        ]
        return web.json_response(_page(rows, page, limit))

    async def users_create(self, request: web.Request) -> web.Response:
        missing = self._authenticator(request)
        if missing:
            return missing
        body = await _json(request)
        if not isinstance(body, dict) or not body.get("user_id") or not body.get("password"):
            return error(400, "BAD_REQUEST", "user_id and password are required")
        user_id = str(body["user_id"])
        if user_id == "_standin_cluster" or self.node.store.get("users", user_id) is not None:
            return error(409, "ALREADY_EXISTS", "User already exists")
        superuser = bool(body.get("is_superuser", False))
        await self.node.commit("users", [(user_id, _plain_user(str(body["password"]), superuser))])
        return web.json_response({"user_id": user_id, "is_superuser": superuser}, status=201)

    async def user_get(self, request: web.Request) -> web.Response:
        missing = self._authenticator(request)
        if missing:
            return missing
        user_id = request.match_info["user_id"]
        user = self.node.store.get("users", user_id)
        if user is None:
            return error(404, "NOT_FOUND", "User not found")
        return web.json_response({"user_id": user_id, "is_superuser": bool(user["is_superuser"])})

    async def user_put(self, request: web.Request) -> web.Response:
        missing = self._authenticator(request)
        if missing:
            return missing
        user_id = request.match_info["user_id"]
        user = self.node.store.get("users", user_id)
        if user is None:
            return error(404, "NOT_FOUND", "User not found")
        body = await _json(request)
        if not isinstance(body, dict) or not body.get("password"):
            return error(400, "BAD_REQUEST", "password is required")
        superuser = bool(body.get("is_superuser", user["is_superuser"]))
        await self.node.commit("users", [(user_id, _plain_user(str(body["password"]), superuser))])
        return web.json_response({"user_id": user_id, "is_superuser": superuser})

    async def user_delete(self, request: web.Request) -> web.Response:
        missing = self._authenticator(request)
        if missing:
            return missing
        user_id = request.match_info["user_id"]
        if self.node.store.get("users", user_id) is None:
            return error(404, "NOT_FOUND", "User not found")
        await self.node.commit("users", [(user_id, None)])
        return web.Response(status=204)

    async def import_users(self, request: web.Request) -> web.Response:
        missing = self._authenticator(request)
        if missing:
            return missing
        kind = request.query.get("type")
        if kind not in ("plain", "hash"):
            return error(400, "BAD_REQUEST", "type must be plain or hash")
        try:
            users = _read_import(request.headers.get("Content-Type", ""), await request.read())
            prepared = [_import_record(entry, kind) for entry in users]
        except (ValueError, KeyError, TypeError) as exc:
            return error(400, "BAD_REQUEST", str(exc))
        if not prepared:
            return error(400, "BAD_REQUEST", "empty_users")
        counts = {"total": len(prepared), "success": 0, "override": 0, "skipped": 0, "failed": 0}
        changes: dict[str, dict[str, Any]] = {}
        for user_id, record in prepared:
            current = changes.get(user_id) or self.node.store.get("users", user_id)
            if current is None:
                counts["success"] += 1
            elif kind == "hash" and _same_hash(current, record):
                counts["skipped"] += 1
                continue
            else:
                counts["override"] += 1  # the API imports with override => true
            changes[user_id] = record
        await self.node.commit("users", list(changes.items()))
        return web.json_response(counts)

    # -- authorization ---------------------------------------------------------------------
    def _authz(self) -> web.Response | None:
        if not self.node.settings.authz_builtin:
            return error(404, "NOT_FOUND", "Not found: built_in_database")
        return None

    async def rules_list(self, request: web.Request) -> web.Response:
        missing = self._authz()
        if missing:
            return missing
        page, limit, bad = _paging(request)
        if bad:
            return bad
        like = request.query.get("like_username")
        rows = [
            {"username": name, "rules": value["rules"]}
            for name, value in self.node.store.items("acl")
            if like is None or like in name
        ]
        return web.json_response(_page(rows, page, limit))

    async def rules_create(self, request: web.Request) -> web.Response:
        missing = self._authz()
        if missing:
            return missing
        body = await _json(request)
        if not isinstance(body, list):
            return error(400, "BAD_REQUEST", "a list of {username, rules} is expected")
        changes: list[tuple[str, dict[str, Any] | None]] = []
        for entry in body:
            try:
                username, rules = self._rules_entry(entry)
            except (ValueError, TypeError) as exc:
                return error(400, "BAD_REQUEST", str(exc))
            changes.append((username, {"rules": rules}))
        exists = [u for u, _ in changes if self.node.store.get("acl", u) is not None]
        if exists:
            names = ",".join(reversed(exists))
            return error(409, "ALREADY_EXISTS", f"Users '{names}' already exist")
        await self.node.commit("acl", changes)
        return web.Response(status=204)

    def _rules_entry(self, entry: Any) -> tuple[str, list[dict[str, Any]]]:
        if not isinstance(entry, dict) or not entry.get("username"):
            raise ValueError("username is required")
        rules = [normalize_rule(rule) for rule in entry.get("rules", [])]
        if len(rules) > self.node.settings.authz_max_rules:
            raise ValueError("max_rules_exceeded")
        return str(entry["username"]), rules

    async def rules_get(self, request: web.Request) -> web.Response:
        missing = self._authz()
        if missing:
            return missing
        username = request.match_info["username"]
        value = self.node.store.get("acl", username)
        if value is None:
            return error(404, "NOT_FOUND", "Not Found")
        return web.json_response({"username": username, "rules": value["rules"]})

    async def rules_put(self, request: web.Request) -> web.Response:
        missing = self._authz()
        if missing:
            return missing
        username = request.match_info["username"]
        body = await _json(request)
        if not isinstance(body, dict) or body.get("username") != username:
            return error(400, "BAD_REQUEST", "the body's username must match the path")
        try:
            _, rules = self._rules_entry(body)
        except (ValueError, TypeError) as exc:
            return error(400, "BAD_REQUEST", str(exc))
        await self.node.commit("acl", [(username, {"rules": rules})])
        return web.Response(status=204)

    async def rules_delete(self, request: web.Request) -> web.Response:
        missing = self._authz()
        if missing:
            return missing
        username = request.match_info["username"]
        if self.node.store.get("acl", username) is None:
            return error(404, "NOT_FOUND", "Username Not Found")
        await self.node.commit("acl", [(username, None)])
        return web.Response(status=204)

    async def authz_settings(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                "no_match": self.node.settings.no_match,
                "deny_action": "ignore",
                "cache": {"enable": True, "max_size": 32, "ttl": "1m", "excludes": []},
            }
        )

    # -- publish ---------------------------------------------------------------------------
    async def publish(self, request: web.Request) -> web.Response:
        body = await _json(request)
        if not isinstance(body, dict):
            return error(400, "BAD_REQUEST", "Invalid json message received")
        result = await self._publish_one(body)
        if "code" in result:
            return web.json_response(result, status=400 if result["code"] != "503" else 503)
        return web.json_response(result)

    async def publish_bulk(self, request: web.Request) -> web.Response:
        body = await _json(request)
        if not isinstance(body, list) or not body:
            return error(400, "BAD_REQUEST", "Invalid json message received")
        results = [await self._publish_one(item) for item in body]
        if any("code" in r for r in results):
            return web.json_response(
                [
                    {"reason_code": 131, "message": r.get("message", "")} if "code" in r else r
                    for r in results
                ],
                status=400,
            )
        return web.json_response(results)

    async def _publish_one(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            return {"code": "BAD_REQUEST", "message": "Invalid message"}
        topic = str(body.get("topic", ""))
        if not topic or "+" in topic or "#" in topic:
            return {"code": "BAD_REQUEST", "message": "Bad topic"}
        try:
            payload = _payload(body)
            qos = int(body.get("qos", 0))
            props = _properties(body.get("properties"))
        except (ValueError, binascii.Error) as exc:
            return {"code": "BAD_REQUEST", "message": str(exc)}
        if qos not in (0, 1, 2):
            return {"code": "BAD_REQUEST", "message": "bad qos"}
        retain = bool(body.get("retain", False))
        ok = await asyncio.to_thread(self.node.relay.publish, topic, payload, qos, retain, props)
        if not ok:
            return {"code": "503", "message": "publish failed"}
        return {"id": uuid.uuid4().hex.upper()}

    # -- stand-in and cluster internals ----------------------------------------------------
    async def violations(self, _request: web.Request) -> web.Response:
        guard = self.node.guard
        return web.json_response([] if guard is None else guard.violations)

    async def violations_clear(self, _request: web.Request) -> web.Response:
        if self.node.guard is not None:
            self.node.guard.violations.clear()
        return web.Response(status=204)

    async def request_counts(self, _request: web.Request) -> web.Response:
        return web.json_response({"total": sum(self.requests.values()), "by_route": self.requests})

    def _cluster_auth(self, request: web.Request) -> web.Response | None:
        given = request.headers.get(COOKIE_HEADER, "")
        if not secrets.compare_digest(given, cluster_token(self.node.settings)):
            return error(401, "BAD_COOKIE", "not a node of this cluster")
        return None

    async def internal_info(self, request: web.Request) -> web.Response:
        refused = self._cluster_auth(request)
        return refused or web.json_response(self.node.info())

    async def internal_entries(self, request: web.Request) -> web.Response:
        refused = self._cluster_auth(request)
        if refused:
            return refused
        since = int(request.query.get("since", "0"))
        store = self.node.store
        seq = store.seq
        entries = await asyncio.to_thread(store.since, since)
        return web.json_response({"incarnation": store.incarnation, "seq": seq, "entries": entries})

    async def internal_sync(self, request: web.Request) -> web.Response:
        refused = self._cluster_auth(request)
        if refused:
            return refused
        body = await request.json()
        applied = self.node.store.merge(body["entries"])
        if applied:
            await self.node.broker.sync()
        return web.Response(status=204)


# -- helpers ---------------------------------------------------------------------------------
async def _json(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _paging(request: web.Request) -> tuple[int, int, web.Response | None]:
    try:
        page = int(request.query.get("page", "1"))
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        page = limit = 0
    if page < 1 or not 1 <= limit <= 10000:
        return 0, 0, error(400, "INVALID_PARAMETER", "page_limit_invalid")
    return page, limit, None


def _page(rows: list[dict[str, Any]], page: int, limit: int) -> dict[str, Any]:
    start = (page - 1) * limit
    return {
        "data": rows[start : start + limit],
        "meta": {
            "page": page,
            "limit": limit,
            "count": len(rows),
            "hasnext": start + limit < len(rows),
        },
    }


def _password_policy(password: str) -> str | None:
    """EMQX 5's dashboard password rules (emqx_dashboard_admin)."""
    if not 8 <= len(password) <= 64:
        return "The range of password length is 8~64"
    kinds = sum(
        bool(re.search(pattern, password)) for pattern in (r"[A-Za-z]", r"[0-9]", r"[^A-Za-z0-9]")
    )
    if kinds < 2:
        return (
            "The password must contain at least two different kind of characters "
            "from groups of letters, numbers, and special characters."
        )
    return None


def _plain_user(password: str, superuser: bool) -> dict[str, Any]:
    return {"mqtt_hash": mosquitto_hash(password), "is_superuser": superuser}


def _same_hash(current: dict[str, Any], record: dict[str, Any]) -> bool:
    keys = ("password_hash", "salt", "is_superuser")
    return all(current.get(k) == record.get(k) for k in keys)


def _is_superuser(value: Any) -> bool:
    return value is True or value == "true"


def _import_record(entry: Any, kind: str) -> tuple[str, dict[str, Any]]:
    if not isinstance(entry, dict) or not entry.get("user_id"):
        raise ValueError("bad_format")
    superuser = _is_superuser(entry.get("is_superuser"))
    if kind == "plain":
        if not entry.get("password"):
            raise ValueError("plain_import_requires_password_field")
        return str(entry["user_id"]), _plain_user(str(entry["password"]), superuser)
    if not entry.get("password_hash"):
        raise ValueError("hash_import_requires_password_hash_field")
    # mosquitto cannot check EMQX's hash formats: such users exist for the API only.
    return str(entry["user_id"]), {
        "mqtt_hash": None,
        "password_hash": str(entry["password_hash"]),
        "salt": str(entry.get("salt", "")),
        "is_superuser": superuser,
    }


def _read_import(content_type: str, body: bytes) -> list[Any]:
    """The users of an import request: a multipart file (name decides JSON or CSV, as in
    EMQX) or a JSON list body."""
    if content_type.startswith("multipart/form-data"):
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body
        )
        for part in message.iter_parts():
            params = dict(part.get_params(header="content-disposition") or [])
            if params.get("name") != "filename":
                continue
            filename = str(params.get("filename", ""))
            data = part.get_payload(decode=True)
            if not isinstance(data, bytes):
                raise TypeError("empty file")
            return _parse_file(filename, data)
        raise ValueError("missing file field 'filename'")
    parsed = json.loads(body) if body else None
    if not isinstance(parsed, list):
        raise TypeError("unknown_file_format")
    return parsed


def _parse_file(filename: str, data: bytes) -> list[Any]:
    if filename.endswith(".json"):
        parsed = json.loads(data)
        if not isinstance(parsed, list):
            raise TypeError("unknown_file_format")
        return parsed
    if filename.endswith(".csv"):
        return list(csv.DictReader(io.StringIO(data.decode())))
    raise ValueError(f"unsupported_file_format: {filename}")


def normalize_rule(raw: Any) -> dict[str, Any]:
    """A rule as EMQX stores and lists it (emqx_authz_rule_raw: qos and retain filled in)."""
    if not isinstance(raw, dict):
        raise TypeError("invalid_rule")
    permission = raw.get("permission")
    if permission not in ("allow", "deny"):
        raise ValueError(f"invalid_permission: {permission}")
    action = str(raw.get("action"))
    action = {"pub": "publish", "sub": "subscribe"}.get(action, action)
    if action not in ("publish", "subscribe", "all"):
        raise ValueError(f"invalid_action: {raw.get('action')}")
    topic = raw.get("topic")
    if not isinstance(topic, str) or not topic:
        raise ValueError("missing_topic")
    qos_raw = raw.get("qos", [0, 1, 2])
    if qos_raw is None:
        qos_raw = [0, 1, 2]
    if isinstance(qos_raw, (int, str)):
        qos_raw = str(qos_raw).split(",")
    qos = [int(q) for q in qos_raw]
    if any(q not in (0, 1, 2) for q in qos):
        raise ValueError(f"invalid_qos: {qos_raw}")
    retain_raw = raw.get("retain", "all")
    retain: bool | str
    if retain_raw in (None, "all"):
        retain = "all"
    elif retain_raw in (True, "true", 1, "1"):
        retain = True
    elif retain_raw in (False, "false", 0, "0"):
        retain = False
    else:
        raise ValueError(f"invalid_retain: {retain_raw}")
    return {
        "topic": topic,
        "permission": permission,
        "action": action,
        "qos": qos,
        "retain": retain,
    }


def _payload(body: dict[str, Any]) -> bytes:
    payload = str(body.get("payload", ""))
    if body.get("payload_encoding", "plain") == "base64":
        return base64.b64decode(payload, validate=True)
    return payload.encode()


def _properties(raw: Any) -> Properties | None:
    if not isinstance(raw, dict) or not raw:
        return None
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    if "payload_format_indicator" in raw:
        props.PayloadFormatIndicator = int(raw["payload_format_indicator"])
    if "message_expiry_interval" in raw:
        props.MessageExpiryInterval = int(raw["message_expiry_interval"])
    if "content_type" in raw:
        props.ContentType = str(raw["content_type"])
    if "response_topic" in raw:
        props.ResponseTopic = str(raw["response_topic"])
    if "correlation_data" in raw:
        props.CorrelationData = str(raw["correlation_data"]).encode()
    if isinstance(raw.get("user_properties"), dict):
        props.UserProperty = [(str(k), str(v)) for k, v in raw["user_properties"].items()]
    return props
