"""The provisioning modules against the ThingsBoard stand-in (strict OpenAPI checking), run by
Ansible as the role runs them: changed only on change, check mode, diff, request counts,
401/429/5xx handling and a failure midway that the next run completes."""

from __future__ import annotations

import json
from typing import Any

from tb_rest_client.models.models_ce import DeviceProfileId
from tb_rest_client.rest_client_ce import RestClientCE

from tests.conftest import REPO_ROOT
from tests.tb_provision import harness
from tests.tb_provision.conftest import Step, Tasks, connection
from tests.tb_provision.proxy import Fault, scripted_proxy

DASHBOARDS = sorted((REPO_ROOT / "files" / "dashboards").glob("*.json"))


def devices(count: int, *, host: str = "t-vm1", version: str = "1.0.0") -> list[dict[str, Any]]:
    return [
        {
            "name": f"{host}-vibration-{n:05d}",
            "type": "vibration",
            "attributes": {
                "class": "vibration",
                "node": host,
                "model": "vibration-cnn",
                "model_version": version,
                "inactivityTimeout": 60000,
            },
        }
        for n in range(1, count + 1)
    ]


def fleet_args(tenant: harness.Tenant, rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return connection(tenant, devices=rows, batch_size=10, **extra)


def profile(threshold: float) -> dict[str, Any]:
    alarms = [
        {
            "id": "a1",
            "alarmType": "Anomaly",
            "propagate": False,
            "createRules": {
                "MAJOR": {
                    "condition": {
                        "condition": [
                            {
                                "key": {"type": "TIME_SERIES", "key": "anomaly_score"},
                                "valueType": "NUMERIC",
                                "predicate": {
                                    "type": "NUMERIC",
                                    "operation": "GREATER",
                                    "value": {"defaultValue": threshold},
                                },
                            }
                        ],
                        "spec": {
                            "type": "DURATION",
                            "unit": "SECONDS",
                            "predicate": {"defaultValue": 10},
                        },
                    }
                }
            },
        }
    ]
    return {"name": "vibration", "description": "test class", "alarms": alarms}


def test_profiles_assets_and_dashboards_are_made_once(
    tb: harness.ThingsBoard, tenant: harness.Tenant, tasks: Tasks
) -> None:
    lonely = harness.new_tenant(
        tb, f"No chain {tenant.username}", "x" + tenant.username, chain=False
    )
    no_chain = connection(lonely, rule_chain=harness.CHAIN_NAME, profiles=[profile(0.8)])
    dashboards = [json.loads(p.read_text()) for p in DASHBOARDS]
    substitutions = {"%FLEET_CLASSES%": ["vibration"], "%NODE_ASSET_TYPE%": "swarm-node"}
    assets = [{"name": "t-vm1"}, {"name": "t-vm2", "label": "Node 2"}]
    profiles = connection(tenant, rule_chain=harness.CHAIN_NAME, profiles=[profile(0.8)])
    nodes = connection(tenant, type="swarm-node", assets=assets)
    boards = connection(tenant, dashboards=dashboards, substitutions=substitutions)
    changed_board = json.loads(json.dumps(dashboards))
    changed_board[0]["configuration"]["description"] = "changed"
    results = tasks(
        Step("tb_device_profiles", profiles, check=True),
        Step("tb_device_profiles", profiles, diff=True),
        Step("tb_device_profiles", profiles),
        Step("tb_device_profiles", {**profiles, "profiles": [profile(0.9)]}, diff=True),
        Step("tb_assets", nodes),
        Step("tb_assets", nodes),
        Step("tb_assets", {**nodes, "assets": assets[:1], "purge": True}),
        Step("tb_dashboards", boards),
        Step("tb_dashboards", boards),
        Step("tb_dashboards", {**boards, "dashboards": changed_board}, diff=True),
        Step("tb_device_profiles", no_chain),
        Step("tb_device_profiles", no_chain, check=True),
    )
    check, first, again, raised = results[0:4]
    assert (check["changed"], check["profiles"]) == (True, {"vibration": ""})
    assert first["changed"]
    assert first["created"] == ["vibration"]
    assert first["diff"]["after"]["vibration"]["defaultRuleChainId"] == first["rule_chain_id"]
    assert first["requests"] == 4  # login, chain by name, list, create
    assert (again["changed"], again["requests"]) == (False, 3)
    assert raised["updated"] == ["vibration"]
    before = raised["diff"]["before"]["vibration"]["alarms"][0]
    assert before["createRules"]["MAJOR"]["condition"]["condition"][0]["predicate"]["value"] == {
        "defaultValue": 0.8
    }
    asset_first, asset_again, purged = results[4:7]
    assert asset_first["created"] == ["t-vm1", "t-vm2"]
    assert (asset_again["changed"], asset_again["requests"]) == (False, 2)
    assert purged["deleted"] == ["t-vm2"]
    board_first, board_again, board_changed = results[7:10]
    assert len(board_first["created"]) == len(DASHBOARDS)
    assert board_again["changed"] is False
    assert board_again["requests"] == 2 + len(DASHBOARDS)  # login, list, one read each
    title = changed_board[0]["title"]
    assert board_changed["updated"] == [title]
    assert board_changed["diff"]["after"][title]["description"] == "changed"
    failed, checked = results[10:12]
    assert failed["failed"] is True
    assert "no rule chain named 'TinyML devices'" in failed["msg"]
    assert checked["changed"] is True
    assert any("TinyML devices" in w for w in checked["warnings"])

    stored = tenant.all("/api/tenant/assets", type="swarm-node")
    assert [a["name"] for a in stored] == ["t-vm1"]
    board = tenant.call("GET", f"/api/dashboard/{board_first['dashboards']['TinyML alarms']}")
    aliases = board["configuration"]["entityAliases"].values()
    fleet_alias = next(a["filter"] for a in aliases if a["alias"] == "Fleet devices")
    assert fleet_alias["deviceTypes"] == ["vibration"]
    # What the module wrote reads back through the official client's models.
    with RestClientCE(base_url=tenant.url) as client:
        client.login(tenant.username, tenant.password)
        read = client.get_device_profile_by_id(
            DeviceProfileId(first["profiles"]["vibration"], "DEVICE_PROFILE")
        )
        assert read.name == "vibration"
        assert read.default_rule_chain_id.id == first["rule_chain_id"]


def test_devices_in_bulk_scale_and_scale_down(tenant: harness.Tenant, tasks: Tasks) -> None:
    thirty = devices(30)
    upgraded_rows = devices(30, version="1.1.0")
    results = tasks(
        Step("tb_fleet_devices", fleet_args(tenant, thirty), check=True, diff=True),
        Step("tb_fleet_devices", fleet_args(tenant, thirty)),
        Step("tb_fleet_devices", fleet_args(tenant, thirty)),
        Step("tb_fleet_devices", fleet_args(tenant, upgraded_rows), diff=True),
        Step("tb_fleet_devices", fleet_args(tenant, upgraded_rows[:25]), diff=True),
        Step("tb_fleet_devices", fleet_args(tenant, upgraded_rows[:25])),
        Step("tb_fleet_devices", fleet_args(tenant, upgraded_rows[:27])),
        Step("tb_fleet_devices", fleet_args(tenant, upgraded_rows[:25], absent="keep")),
        Step(
            "tb_fleet_devices",
            fleet_args(tenant, upgraded_rows[:20], absent="delete", summarize=["node", "class"]),
        ),
        Step("tb_fleet_devices", fleet_args(tenant, upgraded_rows[:20] + thirty[:1])),
        Step("tb_fleet_devices", fleet_args(tenant, upgraded_rows[:20] + devices(3, host="t-vm2"))),
        Step("tb_fleet_devices", fleet_args(tenant, upgraded_rows[:20] + devices(2, host="t-vm2"))),
    )
    check, first, again, upgraded, shrunk, shrunk_again, regrown, kept = results[:8]
    deleted, duplicate, other_host, decommissioned = results[8:]
    assert check["changed"]
    assert check["created_count"] == 30
    assert "+ t-vm1-vibration-00030 (vibration)" in check["diff"]["prepared"]
    assert first["created_count"] == 30
    assert first["requests"] == 2 + 3  # login, one listing page, three bulk imports of 10
    assert (again["changed"], again["requests"]) == (False, 2)
    assert upgraded["updated_count"] == 30
    assert upgraded["requests"] == 5
    assert shrunk["decommissioned"] == [f"t-vm1-vibration-{n:05d}" for n in range(26, 31)]
    assert shrunk["diff"]["prepared"].count("(decommission)") == 5
    assert (shrunk_again["changed"], shrunk_again["requests"]) == (False, 2)
    assert regrown["updated"] == ["t-vm1-vibration-00026", "t-vm1-vibration-00027"]
    assert (kept["changed"], kept["decommissioned_count"]) == (False, 0)  # absent=keep
    assert sorted(deleted["deleted"]) == [f"t-vm1-vibration-{n:05d}" for n in range(21, 31)]
    assert deleted["owned_values"] == {"node": ["t-vm1"], "class": ["vibration"]}
    assert duplicate["failed"]
    assert "duplicate names" in duplicate["msg"]
    assert other_host["created_count"] == 3
    assert decommissioned["decommissioned"] == ["t-vm2-vibration-00003"]

    stored = {d["name"]: d for d in tenant.all("/api/tenant/devices")}
    assert sorted(stored) == [f"t-vm1-vibration-{n:05d}" for n in range(1, 21)] + [
        f"t-vm2-vibration-{n:05d}" for n in range(1, 4)
    ]
    gone = tenant.server_attributes(stored["t-vm2-vibration-00003"]["id"]["id"])
    assert (gone["decommissioned"], gone["node"], gone["class"]) == (True, "t-vm2", "vibration")
    attributes = tenant.server_attributes(stored["t-vm1-vibration-00007"]["id"]["id"])
    assert (
        attributes.items()
        >= {
            "class": "vibration",
            "node": "t-vm1",
            "model": "vibration-cnn",
            "model_version": "1.1.0",
            "inactivityTimeout": 60000,
            "decommissioned": False,
        }.items()
    )


def test_api_failures(tenant: harness.Tenant, tasks: Tasks) -> None:
    """401: log in again, once. 429 and 5xx: retried with backoff, up to a cap. Any other
    error: fails with ThingsBoard's message. A failure midway: the next run completes."""
    rows = devices(40, host="t-vm9")
    faults = [
        Fault("GET", "/api/tenant/devices", 401),  # the token was refused: log in again
        Fault("POST", "/api/device/bulk_import", 429),  # rate limited, then
        Fault("POST", "/api/device/bulk_import", 503),  # unavailable, then served
        Fault("POST", "/api/deviceProfile", 400, message="Device profile is invalid!"),
        Fault("GET", "/api/tenant/assets", 503, times=0),  # down for good
        # the 3rd import of the 40 devices (batches of 10) keeps failing: 20 are in
        Fault("POST", "/api/device/bulk_import", 500, skip=3, times=0),
    ]
    profiles = connection(tenant, rule_chain=harness.CHAIN_NAME, profiles=[profile(0.8)])
    assets = connection(tenant, type="swarm-node", assets=[{"name": "x"}], retries=2)
    with scripted_proxy(tenant.url, faults) as proxy:
        via = {"url": proxy.url}
        recovered, refused, unavailable, midway, completed = tasks(
            Step("tb_fleet_devices", fleet_args(tenant, devices(5), **via)),
            Step("tb_device_profiles", {**profiles, **via}),
            Step("tb_assets", {**assets, **via}),
            Step("tb_fleet_devices", fleet_args(tenant, devices(5) + rows, retries=1, **via)),
            Step("tb_fleet_devices", fleet_args(tenant, devices(5) + rows)),
        )
    assert recovered.get("failed") is not True, recovered
    assert recovered["created_count"] == 5
    # login, 401, login again, listing, 429, 503, import
    assert recovered["requests"] == 7
    assert refused["failed"] is True
    assert "HTTP 400" in refused["msg"]
    assert "Device profile is invalid!" in refused["msg"]
    assert proxy.count("POST", "/api/deviceProfile") == 1  # never retried
    assert unavailable["failed"] is True
    assert "HTTP 503" in unavailable["msg"]
    assert proxy.count("GET", "/api/tenant/assets") == 3  # the request and two retries
    assert unavailable["requests"] == 4
    assert midway["failed"] is True
    assert "HTTP 500" in midway["msg"]
    assert completed["created_count"] == 20  # what the failed run had not imported
    names = [d["name"] for d in tenant.all("/api/tenant/devices")]
    assert sorted(names) == sorted(r["name"] for r in devices(5) + rows)  # none twice
