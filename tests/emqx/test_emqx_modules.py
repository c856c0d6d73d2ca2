"""emqx_users, emqx_acl and emqx_cluster_info against the strict stand-in."""

from __future__ import annotations

from typing import Any

from lab.standins.emqx.emqx_standin.testing import StandinNode, mqtt_client, publish
from tests.emqx.emqx_testlib import Runner, connection

USERS = "/api/v5/authentication/password_based%3Abuilt_in_database/users"
RULES = "/api/v5/authorization/sources/built_in_database/rules/users"


def users_args(node: StandinNode, users: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {**connection(node), "users": users, **extra}


def test_users_create_is_idempotent_and_passwords_work(
    node: StandinNode, run_module: Runner
) -> None:
    users: list[dict[str, Any]] = [
        {"user_id": "m-dev-1", "password": "pw-1"},
        {"user_id": "m-dev-2", "password": "pw-2"},
        {"user_id": "m-bridge", "password": "pw-b", "is_superuser": True},
    ]
    first = run_module("emqx_users", users_args(node, users))
    assert first["changed"] is True, first
    assert first["created_count"] == 3
    assert sorted(first["created"]) == ["m-bridge", "m-dev-1", "m-dev-2"]
    assert "pw-1" not in first["_stdout"]
    assert mqtt_client(node.mqtt_port, "m-dev-1", "pw-1")[1] == 0
    again = run_module("emqx_users", users_args(node, users))
    assert again["changed"] is False
    assert again["requests"] == 1
    assert again["created_count"] == again["updated_count"] == again["deleted_count"] == 0
    assert node.violations() == []


def test_users_check_mode_and_diff_change_nothing(node: StandinNode, run_module: Runner) -> None:
    users: list[dict[str, Any]] = [
        {"user_id": "m-dev-1", "password": "pw-1"},
        {"user_id": "m-new", "password": "x"},
    ]
    result = run_module(
        "emqx_users", users_args(node, users, purge_pattern="m-dev-.*"), check=True, diff=True
    )
    assert result["changed"] is True
    assert result["created"] == ["m-new"]
    assert result["deleted"] == ["m-dev-2"]
    assert result["diff"]["prepared"] == "+ m-new\n- m-dev-2\n"
    assert node.call("GET", f"{USERS}/m-new")[0] == 404
    assert node.call("GET", f"{USERS}/m-dev-2")[0] == 200


def test_users_superuser_change_purge_and_update_password(
    node: StandinNode, run_module: Runner
) -> None:
    users = [
        {"user_id": "m-dev-1", "password": "pw-1", "is_superuser": True},
        {"user_id": "m-bridge", "password": "pw-b", "is_superuser": True},
    ]
    result = run_module("emqx_users", users_args(node, users, purge_pattern="m-dev-.*"))
    assert (result["updated"], result["deleted"]) == (["m-dev-1"], ["m-dev-2"])
    assert node.call("GET", f"{USERS}/m-dev-1")[1]["is_superuser"] is True
    assert node.call("GET", f"{USERS}/m-dev-2")[0] == 404
    assert node.call("GET", f"{USERS}/m-bridge")[0] == 200  # not matched by the pattern
    users[0]["password"] = "pw-1-new"
    result = run_module("emqx_users", users_args(node, users, update_password="always"))
    assert result["changed"] is True
    assert result["updated_count"] == 2
    assert mqtt_client(node.mqtt_port, "m-dev-1", "pw-1-new", client_id="c1")[1] == 0
    assert mqtt_client(node.mqtt_port, "m-dev-1", "pw-1", client_id="c2")[1] == 135
    assert node.violations() == []


def test_users_api_error_is_reported(node: StandinNode, run_module: Runner) -> None:
    args = {**users_args(node, []), "api_secret": "wrong"}
    result = run_module("emqx_users", args)
    assert result["failed"] is True
    assert result["code"] == "BAD_API_KEY_OR_SECRET"
    assert result["status"] == 401


def device_rules(name: str) -> list[dict[str, Any]]:
    return [
        {"topic": f"tinyml/devices/{name}/#", "permission": "allow", "action": "all"},
        {"topic": "tinyml/classes/vibration/ota", "permission": "allow", "action": "subscribe"},
    ]


def test_acl_create_idempotent_update_order_and_purge(
    node: StandinNode, run_module: Runner
) -> None:
    rules: list[dict[str, Any]] = [
        {"username": f"a-dev-{i}", "rules": device_rules(f"a-dev-{i}")} for i in range(3)
    ]
    args = {**connection(node), "rules": rules, "batch_size": 2}
    first = run_module("emqx_acl", args)
    assert (first["changed"], first["created_count"]) == (True, 3)
    assert first["requests"] == 1 + 2  # one list, two create batches
    again = run_module("emqx_acl", args)
    assert (again["changed"], again["requests"]) == (False, 1)
    # Same rules in another order are a change: EMQX stops at the first match.
    rules[0]["rules"] = list(reversed(rules[0]["rules"]))
    # Explicit defaults are no change.
    rules[1]["rules"][0] = {**rules[1]["rules"][0], "qos": [0, 1, 2], "retain": "all"}
    check = run_module(
        "emqx_acl", {**args, "rules": rules[:2], "purge_pattern": "a-dev-.*"}, check=True, diff=True
    )
    assert (check["updated"], check["deleted"]) == (["a-dev-0"], ["a-dev-2"])
    assert check["diff"]["prepared"].startswith("~ a-dev-0:")
    assert node.call("GET", f"{RULES}/a-dev-2")[0] == 200
    result = run_module("emqx_acl", {**args, "rules": rules[:2], "purge_pattern": "a-dev-.*"})
    assert (result["updated"], result["deleted"]) == (["a-dev-0"], ["a-dev-2"])
    listed = node.call("GET", f"{RULES}/a-dev-0")[1]["rules"]
    assert [r["action"] for r in listed] == ["subscribe", "all"]
    assert node.call("GET", f"{RULES}/a-dev-2")[0] == 404
    assert node.violations() == []


def test_acl_rules_enforced_after_module_run(node: StandinNode, run_module: Runner) -> None:
    run_module("emqx_users", users_args(node, [{"user_id": "e-dev", "password": "pw"}]))
    run_module(
        "emqx_acl",
        {**connection(node), "rules": [{"username": "e-dev", "rules": device_rules("e-dev")}]},
    )
    client, rc = mqtt_client(node.mqtt_port, "e-dev", "pw")
    assert rc == 0
    assert publish(client, "tinyml/devices/e-dev/inference", "{}") == 0
    assert publish(client, "tinyml/devices/other/inference", "{}") == 135
    client.loop_stop()


def test_cluster_info(node: StandinNode, run_module: Runner) -> None:
    result = run_module("emqx_cluster_info", {**connection(node), "expected_nodes": [node.node]})
    assert result["changed"] is False
    assert result["all_running"] is True
    assert result["nodes"][0]["node"] == node.node
    result = run_module(
        "emqx_cluster_info", {**connection(node), "expected_nodes": [node.node, "emqx@gone"]}
    )
    assert (result["all_running"], result["missing"]) == (False, ["emqx@gone"])
    assert node.violations() == []
