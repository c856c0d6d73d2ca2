"""The swarm formed from the inventory: nodes, labels, cross-node overlay traffic, growing
by one host and removing it again."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from testinfra.host import Host

SCENARIO = Path(__file__).resolve().parents[1]
REPO_ROOT = SCENARIO.parents[1]
sys.path.insert(0, str(REPO_ROOT))  # for the repository's own test helpers
from tests.lab_helpers import playbook, recap, succeeded  # noqa: E402

PROBE_IMAGE = "registry.lab:5000/lab/probe:latest"
GROUP_LABELS = ("emqx", "timescaledb", "thingsboard", "simulators")


def inventory_vars(host: Host) -> dict[str, Any]:
    variables: dict[str, Any] = host.ansible.get_variables()
    return variables


def first_manager(host: Host) -> str:
    managers: list[str] = inventory_vars(host)["groups"]["swarm_managers"]
    return managers[0]


@pytest.fixture
def manager(host: Host) -> Host:
    """Cluster-wide checks run once, on the first manager."""
    if inventory_vars(host)["inventory_hostname"] != first_manager(host):
        pytest.skip("cluster-wide check, run on the first manager")
    return host


def nodes(manager: Host) -> list[dict[str, Any]]:
    ids = manager.check_output("docker node ls --quiet").split()
    parsed: list[dict[str, Any]] = json.loads(
        manager.check_output(f"docker node inspect {' '.join(ids)}")
    )
    return parsed


def expected_labels(hostvars: dict[str, Any]) -> dict[str, str]:
    labels = dict(hostvars.get("swarm_node_labels") or {})
    labels["tinyml.host"] = hostvars["inventory_hostname"]
    for group in GROUP_LABELS:
        if group in hostvars["group_names"]:
            labels[f"tinyml.group.{group}"] = "true"
    return labels


def test_engine_is_active(host: Host) -> None:
    assert host.service("docker").is_running


def test_every_inventory_host_is_a_ready_node_with_its_role_and_labels(
    manager: Host, host: Host
) -> None:
    by_name = {n["Spec"]["Labels"].get("tinyml.host"): n for n in nodes(manager)}
    groups = inventory_vars(host)["groups"]
    for name in groups["swarm_managers"] + groups["swarm_workers"]:
        node = by_name[name]
        hostvars = host.ansible("debug", f"var=hostvars['{name}']")[f"hostvars['{name}']"]
        assert node["Status"]["State"] == "ready", name
        assert node["Spec"]["Role"] == ("manager" if name in groups["swarm_managers"] else "worker")
        assert node["Spec"]["Availability"] == "active"
        assert node["Spec"]["Labels"] == expected_labels(hostvars), name


def test_overlay_networks_exist_as_configured(manager: Host) -> None:
    for network in inventory_vars(manager)["swarm_networks"]:
        info = json.loads(manager.check_output(f"docker network inspect {network['name']}"))[0]
        assert info["Driver"] == "overlay"
        assert info["Attachable"] is network.get("attachable", True)


def test_service_reaches_a_service_on_another_node_by_name(manager: Host) -> None:
    groups = inventory_vars(manager)["groups"]
    server_node, client_node = groups["swarm_workers"][:2]
    network = inventory_vars(manager)["swarm_networks"][0]["name"]
    suffix = uuid.uuid4().hex[:6]
    server, client = f"probe-server-{suffix}", f"probe-client-{suffix}"
    fetch = (
        f"for i in $(seq 1 60); do busybox wget -qO- http://{server}:8080/ && exit 0; "
        "sleep 1; done; exit 1"
    )
    try:
        manager.check_output(
            f"docker service create --detach --name {server} --network {network} "
            f"--endpoint-mode dnsrr --constraint node.labels.tinyml.host=={server_node} "
            f"{PROBE_IMAGE}"
        )
        manager.check_output(
            f"docker service create --detach --name {client} --network {network} "
            f"--endpoint-mode dnsrr --restart-condition none "
            f"--constraint node.labels.tinyml.host=={client_node} {PROBE_IMAGE} sh -c '{fetch}'"
        )
        state = ""
        for _ in range(90):
            state = manager.check_output(
                f"docker service ps {client} --format '{{{{.CurrentState}}}}'"
            )
            if state.startswith(("Complete", "Failed", "Rejected")):
                break
            manager.run("sleep 1")
        assert state.startswith("Complete"), state
        assert manager.check_output(f"docker service logs --raw {client}").strip() == "ok"
    finally:
        manager.run(f"docker service rm {server} {client}")


def ansible_playbook(inventory: Path, *args: str) -> str:
    return succeeded(playbook(inventory, *args, timeout=900))


def test_a_new_worker_joins_with_its_labels_and_leaves_on_request(
    manager: Host, tmp_path: Path
) -> None:
    inventory = tmp_path / "inventory"
    shutil.copytree(SCENARIO / "inventory", inventory, symlinks=False)
    hosts_file = inventory / "hosts.yml"
    hosts = yaml.safe_load(hosts_file.read_text())
    original = list(hosts["all"]["children"]["swarm_managers"]["hosts"]) + list(
        hosts["all"]["children"]["swarm_workers"]["hosts"]
    )
    new = "mol-swarm-4"
    hosts["all"]["children"]["swarm_workers"]["hosts"][new] = {
        "lab_vm_address": "172.29.11.14",
        "swarm_node_labels": {"zone": "d", "gpu": "none"},
    }
    hosts_file.write_text(yaml.safe_dump(hosts))
    try:
        ansible_playbook(inventory, "playbooks/lab.yml")
        counters = recap(ansible_playbook(inventory, str(SCENARIO / "converge.yml")))
        for name in original:
            assert counters[name]["changed"] == 0, (name, counters[name])
        assert counters[new]["changed"] > 0
        node = next(n for n in nodes(manager) if n["Spec"]["Labels"].get("tinyml.host") == new)
        assert node["Status"]["State"] == "ready"
        assert node["Spec"]["Labels"] == {"zone": "d", "gpu": "none", "tinyml.host": new}

        ansible_playbook(inventory, "playbooks/remove-node.yml", "-e", f"node={new}")
        remaining = {n["Spec"]["Labels"].get("tinyml.host") for n in nodes(manager)}
        assert new not in remaining
        assert remaining == set(original)
    finally:
        subprocess.run(["docker", "rm", "--force", new], capture_output=True, check=False)
        subprocess.run(
            ["docker", "volume", "rm", f"{new}-docker"], capture_output=True, check=False
        )
