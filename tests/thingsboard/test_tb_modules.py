"""The tb_* modules against the ThingsBoard stand-in, run by Ansible as a role runs them."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from typing import Any

import requests

from lab.standins.thingsboard.tests.conftest import StandIn
from tests.conftest import REPO_ROOT

SYSADMIN = "sysadmin@thingsboard.org"
NEW_SYSADMIN_PASSWORD = "Rotated-Sysadmin-1"


def run_module(name: str, args: dict[str, Any], *, check: bool = False) -> dict[str, Any]:
    command = ["ansible", "localhost", "-m", name, "-a", json.dumps(args)]
    if check:
        command.append("--check")
    env = {
        **os.environ,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_STDOUT_CALLBACK": "json",
    }
    done = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    # ansible.cfg's task timer prints around the JSON document.
    document = done.stdout[done.stdout.index("\n{") :]
    output, _ = json.JSONDecoder().raw_decode(document.lstrip())
    result: dict[str, Any] = output["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return result


def can_log_in(standin: StandIn, username: str, password: str) -> bool:
    response = requests.post(
        standin.url + "/api/auth/login",
        json={"username": username, "password": password},
        timeout=10,
    )
    return response.status_code == 200


def sysadmin_args(standin: StandIn) -> dict[str, Any]:
    return {"url": standin.url, "username": SYSADMIN, "password": NEW_SYSADMIN_PASSWORD}


def rotated(standin: StandIn) -> dict[str, Any]:
    args = {**sysadmin_args(standin), "previous_passwords": ["sysadmin"]}
    return run_module("tb_password", args)


def test_password_rotates_away_from_the_default_once(standin: StandIn) -> None:
    check = run_module(
        "tb_password", {**sysadmin_args(standin), "previous_passwords": ["sysadmin"]}, check=True
    )
    assert check["changed"] is True
    assert can_log_in(standin, SYSADMIN, "sysadmin"), "check mode changed the password"

    first = rotated(standin)
    assert first["changed"] is True
    assert first["previous_refused"] is True
    assert not can_log_in(standin, SYSADMIN, "sysadmin")
    assert can_log_in(standin, SYSADMIN, NEW_SYSADMIN_PASSWORD)
    assert rotated(standin)["changed"] is False


def test_password_fails_when_no_known_password_works(standin: StandIn) -> None:
    rotated(standin)
    args = {**sysadmin_args(standin), "password": "not-it", "previous_passwords": ["nor-this"]}
    result = run_module("tb_password", args)
    assert result.get("failed") is True
    assert "neither the password nor a previous one" in result["msg"]


def tenant_args(standin: StandIn, title: str, email: str) -> dict[str, Any]:
    return {
        **sysadmin_args(standin),
        "title": title,
        "admin_email": email,
        "admin_password": "Tenant-Admin-Pass-1",
    }


def test_tenant_and_activated_admin_are_ensured_once(standin: StandIn) -> None:
    rotated(standin)
    title, email = f"Fleet {uuid.uuid4().hex[:6]}", f"ops-{uuid.uuid4().hex[:6]}@fleet.test"
    assert run_module("tb_tenant", tenant_args(standin, title, email), check=True)["changed"]
    first = run_module("tb_tenant", tenant_args(standin, title, email))
    assert first["changed"] is True
    assert first["tenant_id"]
    assert can_log_in(standin, email, "Tenant-Admin-Pass-1")
    again = run_module("tb_tenant", tenant_args(standin, title, email))
    assert again["changed"] is False
    assert again["tenant_id"] == first["tenant_id"]


def tenant_admin(standin: StandIn) -> dict[str, Any]:
    rotated(standin)
    email = "ops-modules@fleet.test"
    run_module("tb_tenant", tenant_args(standin, "Module tests", email))
    return {"url": standin.url, "username": email, "password": "Tenant-Admin-Pass-1"}


def test_gateway_device_and_its_token(standin: StandIn) -> None:
    admin = tenant_admin(standin)
    args = {**admin, "name": "gw-test", "gateway": True, "access_token": "token-one"}
    first = run_module("tb_device", args)
    assert first["changed"] is True
    assert run_module("tb_device", args)["changed"] is False
    changed_token = run_module("tb_device", {**args, "access_token": "token-two"})
    assert changed_token["changed"] is True
    assert changed_token["device_id"] == first["device_id"]
    assert run_module("tb_device", {**args, "access_token": "token-two"})["changed"] is False


def chain(host: str) -> dict[str, Any]:
    engine = "org.thingsboard.rule.engine."
    return {
        "ruleChain": {"name": "Module test chain"},
        "metadata": {
            "firstNodeIndex": 0,
            "nodes": [
                {
                    "type": engine + "filter.TbMsgTypeSwitchNode",
                    "name": "Type switch",
                    "configuration": {"version": 0},
                },
                {
                    "type": engine + "telemetry.TbMsgTimeseriesNode",
                    "name": "Save telemetry",
                    "configuration": {"defaultTTL": 0},
                },
                {
                    "type": engine + "mqtt.TbMqttNode",
                    "name": "Alert",
                    "configuration": {
                        "host": host,
                        "port": 1883,
                        "topicPattern": "tinyml/devices/${deviceName}/alert",
                        "credentials": {"type": "anonymous"},
                    },
                },
            ],
            "connections": [
                {"fromIndex": 0, "toIndex": 1, "type": "Post telemetry"},
                {"fromIndex": 0, "toIndex": 2, "type": "Other"},
            ],
        },
    }


def test_rule_chain_is_imported_then_left_alone_until_it_differs(standin: StandIn) -> None:
    admin = tenant_admin(standin)
    first = run_module("tb_rule_chain", {**admin, "chain": chain("emqx-a")})
    assert first["changed"] is True
    assert first["rule_chain_id"]
    same = run_module("tb_rule_chain", {**admin, "chain": chain("emqx-a")})
    assert same["changed"] is False
    assert same["rule_chain_id"] == first["rule_chain_id"]
    assert run_module("tb_rule_chain", {**admin, "chain": chain("emqx-b")}, check=True)["changed"]
    assert run_module("tb_rule_chain", {**admin, "chain": chain("emqx-b")})["changed"] is True
    assert run_module("tb_rule_chain", {**admin, "chain": chain("emqx-b")})["changed"] is False
