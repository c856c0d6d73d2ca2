"""The REST API of one node: auth, dashboard users, MQTT users, ACL rules, publish."""

from __future__ import annotations

import json
import subprocess
import sys

from lab.standins.emqx.emqx_standin import config
from lab.standins.emqx.emqx_standin.testing import REPO, StandinNode

USERS = "/api/v5/authentication/password_based%3Abuilt_in_database/users"
IMPORT = "/api/v5/authentication/password_based%3Abuilt_in_database/import_users"
RULES = "/api/v5/authorization/sources/built_in_database/rules/users"


def multipart(filename: str, content: bytes, content_type: str) -> tuple[bytes, str]:
    body = (
        b"--XyZ\r\n"
        + f'Content-Disposition: form-data; name="filename"; filename="{filename}"\r\n'.encode()
        + f"Content-Type: {content_type}\r\n\r\n".encode()
        + content
        + b"\r\n--XyZ--\r\n"
    )
    return body, "multipart/form-data; boundary=XyZ"


def test_status_needs_no_credentials(node: StandinNode) -> None:
    status, body = node.call("GET", "/api/v5/status", auth=None)
    assert status == 200
    assert body == f"Node {node.node} is started\nemqx is running"


def test_missing_or_wrong_credentials_are_refused_like_emqx(node: StandinNode) -> None:
    status, body = node.call("GET", "/api/v5/nodes", auth=None)
    assert (status, body["code"]) == (401, "AUTHORIZATION_HEADER_ERROR")
    status, body = node.call("GET", "/api/v5/nodes", auth="Basic YW5zaWJsZTp3cm9uZw==")
    assert (status, body["code"]) == (401, "BAD_API_KEY_OR_SECRET")
    status, body = node.call("GET", "/api/v5/nodes", auth="Bearer nope")
    assert (status, body["code"]) == (401, "BAD_TOKEN")


def test_dashboard_login_change_password_and_logout(node: StandinNode) -> None:
    status, body = node.call(
        "POST", "/api/v5/login", {"username": "admin", "password": "wrong"}, auth=None
    )
    assert (status, body["code"]) == (401, "BAD_USERNAME_OR_PWD")
    status, body = node.call(
        "POST", "/api/v5/login", {"username": "admin", "password": "Adm1n-first"}, auth=None
    )
    assert status == 200
    assert body["version"] == "5.8.9"
    assert body["license"] == {"edition": "opensource"}
    bearer = f"Bearer {body['token']}"
    assert node.call("GET", "/api/v5/nodes", auth=bearer)[0] == 200
    change = {"old_pwd": "Adm1n-first", "new_pwd": "short"}
    assert node.call("POST", "/api/v5/users/admin/change_pwd", change, auth=bearer)[0] == 400
    change["new_pwd"] = "Adm1n-second"
    assert node.call("POST", "/api/v5/users/admin/change_pwd", change, auth=bearer)[0] == 204
    # EMQX drops the user's tokens on a password change.
    assert node.call("GET", "/api/v5/nodes", auth=bearer)[0] == 401
    status, body = node.call(
        "POST", "/api/v5/login", {"username": "admin", "password": "Adm1n-second"}, auth=None
    )
    assert status == 200
    bearer = f"Bearer {body['token']}"
    assert node.call("POST", "/api/v5/logout", {"username": "admin"}, auth=bearer)[0] == 204
    assert node.call("GET", "/api/v5/nodes", auth=bearer)[0] == 401
    assert node.violations() == []


def test_user_crud(node: StandinNode) -> None:
    user = {"user_id": "crud-1", "password": "pw-1", "is_superuser": False}
    assert node.call("POST", USERS, user) == (201, {"user_id": "crud-1", "is_superuser": False})
    assert node.call("POST", USERS, user)[0] == 409
    assert node.call("GET", f"{USERS}/crud-1") == (
        200,
        {"user_id": "crud-1", "is_superuser": False},
    )
    status, body = node.call("PUT", f"{USERS}/crud-1", {"password": "pw-2", "is_superuser": True})
    assert (status, body["is_superuser"]) == (200, True)
    assert node.call("DELETE", f"{USERS}/crud-1")[0] == 204
    assert node.call("GET", f"{USERS}/crud-1")[0] == 404
    assert node.call("GET", "/api/v5/authentication/other/users")[0] == 404
    assert node.violations() == []


def test_import_json_and_csv_then_page(node: StandinNode) -> None:
    users = [{"user_id": f"imp-{i:03d}", "password": f"pw{i}"} for i in range(150)]
    raw, ctype = multipart("u.json", json.dumps(users).encode(), "application/json")
    status, body = node.call("POST", IMPORT + "?type=plain", raw=raw, content_type=ctype)
    assert (status, body) == (
        200,
        {"total": 150, "success": 150, "override": 0, "skipped": 0, "failed": 0},
    )
    csv_text = b"user_id,password,is_superuser\nimp-000,new,true\nimp-csv,pw,false\n"
    raw, ctype = multipart("u.csv", csv_text, "text/csv")
    status, body = node.call("POST", IMPORT + "?type=plain", raw=raw, content_type=ctype)
    assert body == {"total": 2, "success": 1, "override": 1, "skipped": 0, "failed": 0}
    status, body = node.call("GET", f"{USERS}?like_user_id=imp-&limit=100&page=2")
    assert status == 200
    assert body["meta"] == {"page": 2, "limit": 100, "count": 151, "hasnext": False}
    assert len(body["data"]) == 51
    status, body = node.call("GET", f"{USERS}/imp-000")
    assert body["is_superuser"] is True
    assert node.violations() == []


def test_rules_crud_and_listing_shape(node: StandinNode) -> None:
    rules = [{"topic": "a/b", "permission": "allow", "action": "publish"}]
    assert node.call("POST", RULES, [{"username": "r-1", "rules": rules}])[0] == 204
    status, body = node.call("POST", RULES, [{"username": "r-1", "rules": rules}])
    assert (status, body["code"]) == (409, "ALREADY_EXISTS")
    # EMQX lists rules with qos and retain filled in.
    listed = {
        "topic": "a/b",
        "permission": "allow",
        "action": "publish",
        "qos": [0, 1, 2],
        "retain": "all",
    }
    assert node.call("GET", f"{RULES}/r-1") == (200, {"username": "r-1", "rules": [listed]})
    new = [{"topic": "a/#", "permission": "deny", "action": "all", "qos": [1], "retain": True}]
    assert node.call("PUT", f"{RULES}/r-1", {"username": "r-1", "rules": new})[0] == 204
    status, body = node.call("GET", f"{RULES}?like_username=r-&limit=10000")
    assert body["data"] == [{"username": "r-1", "rules": [{**new[0]}]}]
    assert node.call("DELETE", f"{RULES}/r-1")[0] == 204
    assert node.call("DELETE", f"{RULES}/r-1")[0] == 404
    assert node.call("GET", "/api/v5/authorization/settings")[1]["no_match"] == "deny"
    assert node.violations() == []


def test_nonconforming_request_is_refused_and_recorded(node: StandinNode) -> None:
    node.call("DELETE", "/_standin/violations", auth=None)
    status, body = node.call("POST", USERS, {"userid": "x"})  # user_id misspelt
    assert status == 400
    assert "stand-in spec check" in body["message"]
    recorded = node.violations()
    assert len(recorded) == 1
    assert recorded[0]["method"] == "POST"
    node.call("DELETE", "/_standin/violations", auth=None)


def test_nodes_lists_this_node(node: StandinNode) -> None:
    status, body = node.call("GET", "/api/v5/nodes")
    assert status == 200
    assert [(n["node"], n["node_status"], n["version"]) for n in body] == [
        (node.node, "running", "5.8.9")
    ]
    assert node.call("GET", f"/api/v5/nodes/{node.node}")[1]["node"] == node.node
    assert node.call("GET", "/api/v5/nodes/emqx@nowhere")[0] == 404


def test_ctl_status_prints_like_emqx(node: StandinNode) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lab.standins.emqx.emqx_standin.ctl", "status"],
        env=node.env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"Node '{node.node}' 5.8.9 is started"


def test_unknown_env_var_is_a_warning_not_a_failure(base: object) -> None:
    settings = config.load({"EMQX_NO__SUCH": "1", "EMQX_NODE__NAME": "emqx@x"})
    assert settings.node == "emqx@x"
    assert any("EMQX_NO__SUCH" in w for w in settings.warnings)
