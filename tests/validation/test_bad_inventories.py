"""Bad inventories are refused before any host is touched, with a message naming host and
variable.

Every case runs the whole site.yml against hosts that do not exist: a task that tried to
reach one would fail as unreachable, so failing with the validation message proves the
check ran before anything else.
"""

from __future__ import annotations

import copy
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT

LAB = REPO_ROOT / "inventories" / "lab"

Inventory = dict[str, Any]


def load_lab_inventory() -> Inventory:
    """The lab inventory as {relative file path: parsed YAML}."""
    files = [LAB / "hosts.yml", *sorted((LAB / "group_vars" / "all").glob("*.yml"))]
    return {str(path.relative_to(LAB)): yaml.safe_load(path.read_text()) for path in files}


def write_inventory(inventory: Inventory, directory: Path) -> None:
    for name, content in inventory.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(content))


def run_site(inventory: Inventory, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    write_inventory(inventory, tmp_path)
    # Unreachable on purpose: a container name no engine has.
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    return subprocess.run(
        ["ansible-playbook", "-i", str(tmp_path), "site.yml"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def groups(inventory: Inventory) -> dict[str, Any]:
    children: dict[str, Any] = inventory["hosts.yml"]["all"]["children"]
    return children


def host(inventory: Inventory, name: str) -> dict[str, Any]:
    for group in groups(inventory).values():
        hosts = group.get("hosts") or {}
        if name in hosts:
            if hosts[name] is None:
                hosts[name] = {}
            found: dict[str, Any] = hosts[name]
            return found
    raise KeyError(name)


def rename_hosts(inventory: Inventory) -> Inventory:
    """Point every host at a container that does not exist."""
    renamed = copy.deepcopy(inventory)
    for group in groups(renamed).values():
        hosts = group.get("hosts") or {}
        group["hosts"] = {f"nohost-{name}": value for name, value in hosts.items()}
    return renamed


def two_managers(inv: Inventory) -> None:
    workers = groups(inv)["swarm_workers"]["hosts"]
    groups(inv)["swarm_managers"]["hosts"]["lab-vm2"] = workers.pop("lab-vm2")


def no_managers(inv: Inventory) -> None:
    managers = groups(inv)["swarm_managers"]["hosts"]
    groups(inv)["swarm_workers"]["hosts"].update(managers)
    groups(inv)["swarm_managers"]["hosts"] = {}


def nine_managers(inv: Inventory) -> None:
    managers = groups(inv)["swarm_managers"]["hosts"]
    managers.update(groups(inv)["swarm_workers"]["hosts"])
    groups(inv)["swarm_workers"]["hosts"] = {}
    for index in range(4, 10):
        managers[f"lab-vm{index}"] = {"lab_vm_address": f"172.29.0.{10 + index}"}


def manager_and_worker(inv: Inventory) -> None:
    groups(inv)["swarm_workers"]["hosts"]["lab-vm1"] = {}


def outside_the_swarm(inv: Inventory) -> None:
    groups(inv)["stray"] = {"hosts": {"lab-vm9": {"lab_vm_address": "172.29.0.19"}}}


def label_not_a_string(inv: Inventory) -> None:
    host(inv, "lab-vm2")["swarm_node_labels"] = {"zone": 2}


def labels_not_a_mapping(inv: Inventory) -> None:
    host(inv, "lab-vm2")["swarm_node_labels"] = ["zone=b"]


def bad_availability(inv: Inventory) -> None:
    host(inv, "lab-vm3")["swarm_node_availability"] = "off"


def bad_engine_source(inv: Inventory) -> None:
    inv["group_vars/all/docker.yml"]["docker_engine_source"] = "snap"


def log_files_not_a_number(inv: Inventory) -> None:
    inv["group_vars/all/docker.yml"]["docker_engine_log_max_file"] = "many"


def network_without_name(inv: Inventory) -> None:
    inv["group_vars/all/swarm.yml"]["swarm_networks"] = [{"attachable": True}]


def network_encryption_not_bool(inv: Inventory) -> None:
    inv["group_vars/all/swarm.yml"]["swarm_networks"][0]["encrypted"] = "sometimes"


def listen_port_not_a_number(inv: Inventory) -> None:
    host(inv, "lab-vm1")["swarm_listen_port"] = "twenty-three"


def two_emqx_nodes(inv: Inventory) -> None:
    groups(inv)["emqx"] = {"hosts": {"lab-vm1": None, "lab-vm2": None}}


def two_databases(inv: Inventory) -> None:
    groups(inv)["timescaledb"] = {"hosts": {"lab-vm2": None, "lab-vm3": None}}


def empty_database_group(inv: Inventory) -> None:
    groups(inv)["timescaledb"] = {"hosts": {}}


def one_database(inv: Inventory) -> None:
    groups(inv)["timescaledb"] = {"hosts": {"lab-vm2": None}}


def database_connections_not_a_number(inv: Inventory) -> None:
    one_database(inv)
    host(inv, "lab-vm2")["timescaledb_max_connections"] = "plenty"


def database_extension_requirement_not_a_bool(inv: Inventory) -> None:
    one_database(inv)
    inv["group_vars/all/timescaledb.yml"]["timescaledb_require_extension"] = "perhaps"


def database_backup_location_unknown(inv: Inventory) -> None:
    one_database(inv)
    host(inv, "lab-vm2")["timescaledb_backup_location"] = "s3"


def database_settings_not_a_mapping(inv: Inventory) -> None:
    one_database(inv)
    host(inv, "lab-vm2")["timescaledb_settings"] = ["work_mem=64MB"]


def three_emqx_nodes(inv: Inventory) -> None:
    groups(inv)["emqx"] = {"hosts": {"lab-vm1": None, "lab-vm2": None, "lab-vm3": None}}


def emqx_tcp_switch_not_bool(inv: Inventory) -> None:
    three_emqx_nodes(inv)
    inv["group_vars/all/emqx.yml"]["emqx_listener_tcp_enable"] = "sometimes"


def emqx_tls_port_not_a_number(inv: Inventory) -> None:
    three_emqx_nodes(inv)
    host(inv, "lab-vm2")["emqx_mqtts_port"] = "tls"


def emqx_unknown_log_level(inv: Inventory) -> None:
    three_emqx_nodes(inv)
    inv["group_vars/all/emqx.yml"]["emqx_log_level"] = "verbose"


def emqx_extra_env_not_a_mapping(inv: Inventory) -> None:
    three_emqx_nodes(inv)
    inv["group_vars/all/emqx.yml"]["emqx_extra_env"] = ["STANDIN_SPEC_STRICT=1"]


def simulators(inv: Inventory, **counts: Any) -> None:
    """lab-vm1..3 run simulators; ``counts`` (lab_vm2=...) replaces a host's fleet_devices."""
    groups(inv)["simulators"] = {"hosts": {"lab-vm1": None, "lab-vm2": None, "lab-vm3": None}}
    for name in ("lab-vm1", "lab-vm2", "lab-vm3"):
        host(inv, name)["fleet_devices"] = {"vibration": 3, "gesture": 2}
    for name, value in counts.items():
        host(inv, name.replace("_", "-"))["fleet_devices"] = value


def fleet_class(inv: Inventory, name: str) -> dict[str, Any]:
    classes: list[dict[str, Any]] = inv["group_vars/all/fleet.yml"]["fleet_classes"]
    return next(c for c in classes if c["name"] == name)


def fleet_unknown_class(inv: Inventory) -> None:
    simulators(inv, lab_vm2={"vibration": 3, "robot": 1})


def fleet_count_not_a_number(inv: Inventory) -> None:
    simulators(inv, lab_vm3={"vibration": "many"})


def fleet_negative_count(inv: Inventory) -> None:
    simulators(inv, lab_vm1={"gesture": -2})


def fleet_unknown_model(inv: Inventory) -> None:
    simulators(inv)
    fleet_class(inv, "gesture")["model_version"] = "9.9.9"


def fleet_arena_over_budget(inv: Inventory) -> None:
    simulators(inv)
    fleet_class(inv, "vibration")["ram_budget_bytes"] = 2048


def fleet_flash_over_budget(inv: Inventory) -> None:
    simulators(inv)
    fleet_class(inv, "gesture")["flash_budget_bytes"] = 4096


def fleet_duplicate_device_names(inv: Inventory) -> None:
    # Host "lab" with class "vm1-vibration" names its devices like lab-vm1's vibration ones.
    simulators(inv)
    groups(inv)["swarm_workers"]["hosts"]["lab"] = {"lab_vm_address": "172.29.0.19"}
    groups(inv)["simulators"]["hosts"]["lab"] = None
    twin = {**fleet_class(inv, "vibration"), "name": "vm1-vibration"}
    inv["group_vars/all/fleet.yml"]["fleet_classes"].append(twin)
    host(inv, "lab")["fleet_devices"] = {"vm1-vibration": 1}


def fleet_class_defined_twice(inv: Inventory) -> None:
    simulators(inv)
    classes = inv["group_vars/all/fleet.yml"]["fleet_classes"]
    classes.append(dict(classes[0]))


# (mutation, fragments the failure message must contain)
CASES: list[tuple[Callable[[Inventory], None], list[str]]] = [
    (two_managers, ["swarm_managers has 2 hosts", "nohost-lab-vm1", "nohost-lab-vm2"]),
    (no_managers, ["swarm_managers has 0 hosts"]),
    (nine_managers, ["swarm_managers has 9 hosts"]),
    (manager_and_worker, ["host nohost-lab-vm1", "both swarm_managers and swarm_workers"]),
    (outside_the_swarm, ["host nohost-lab-vm9", "neither swarm_managers nor"]),
    (label_not_a_string, ["host nohost-lab-vm2", "swarm_node_labels", '"zone": 2']),
    (labels_not_a_mapping, ["host nohost-lab-vm2", "swarm_node_labels"]),
    (bad_availability, ["host nohost-lab-vm3", "swarm_node_availability", "off"]),
    (bad_engine_source, ["host nohost-lab-vm", "docker_engine_source", "snap"]),
    (log_files_not_a_number, ["host nohost-lab-vm", "docker_engine_log_max_file"]),
    (network_without_name, ["host nohost-lab-vm", "swarm_networks", "name"]),
    (network_encryption_not_bool, ["host nohost-lab-vm", "encrypted"]),
    (listen_port_not_a_number, ["host nohost-lab-vm1", "swarm_listen_port"]),
    (two_emqx_nodes, ["group emqx has 2 hosts", "nohost-lab-vm1", "nohost-lab-vm2"]),
    (two_databases, ["group timescaledb has 2 hosts", "nohost-lab-vm2", "nohost-lab-vm3"]),
    (emqx_tcp_switch_not_bool, ["host nohost-lab-vm", "role emqx", "emqx_listener_tcp_enable"]),
    (emqx_tls_port_not_a_number, ["host nohost-lab-vm2", "role emqx", "emqx_mqtts_port"]),
    (emqx_unknown_log_level, ["host nohost-lab-vm", "role emqx", "emqx_log_level", "verbose"]),
    (emqx_extra_env_not_a_mapping, ["host nohost-lab-vm", "role emqx", "emqx_extra_env"]),
    (empty_database_group, ["group timescaledb has 0 hosts"]),
    (database_connections_not_a_number, ["host nohost-lab-vm2", "timescaledb_max_connections"]),
    (
        database_extension_requirement_not_a_bool,
        ["host nohost-lab-vm2", "timescaledb_require_extension"],
    ),
    (
        database_backup_location_unknown,
        ["host nohost-lab-vm2", "timescaledb_backup_location", "s3"],
    ),
    (database_settings_not_a_mapping, ["host nohost-lab-vm2", "timescaledb_settings"]),
    (fleet_unknown_class, ["host nohost-lab-vm2", "fleet_devices.robot", "unknown class"]),
    (fleet_count_not_a_number, ["host nohost-lab-vm3", "fleet_devices.vibration", "'many'"]),
    (fleet_negative_count, ["host nohost-lab-vm1", "fleet_devices.gesture", "got -2"]),
    (fleet_unknown_model, ["host nohost-lab-vm", "fleet_classes[gesture].model", "9.9.9"]),
    (fleet_arena_over_budget, ["host nohost-lab-vm", "fleet_classes[vibration]", "3744", "2048"]),
    (fleet_flash_over_budget, ["host nohost-lab-vm", "fleet_classes[gesture]", "flash", "4096"]),
    (
        fleet_duplicate_device_names,
        ["host nohost-lab", "duplicate device names", "nohost-lab-vm1-vibration-00001"],
    ),
    (fleet_class_defined_twice, ["host nohost-lab-vm", "fleet_classes[vibration]", "twice"]),
]


@pytest.mark.parametrize(("mutate", "fragments"), CASES, ids=[c[0].__name__ for c in CASES])
def test_bad_inventory_is_refused_before_any_change(
    mutate: Callable[[Inventory], None], fragments: list[str], tmp_path: Path
) -> None:
    inventory = load_lab_inventory()
    mutate(inventory)
    result = run_site(rename_hosts(inventory), tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "UNREACHABLE" not in output, "a host was contacted before validation failed"
    failure = "\n".join(line for line in output.splitlines() if "[ERROR]" in line)
    for fragment in fragments:
        assert fragment in failure, f"{fragment!r} not in:\n{failure}"


def test_lab_inventory_passes_validation(tmp_path: Path) -> None:
    write_inventory(load_lab_inventory(), tmp_path)
    result = subprocess.run(
        ["ansible-playbook", "-i", str(tmp_path), "playbooks/validate.yml"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_lab_inventory_with_an_emqx_cluster_passes_validation(tmp_path: Path) -> None:
    inventory = load_lab_inventory()
    three_emqx_nodes(inventory)
    write_inventory(inventory, tmp_path)
    result = subprocess.run(
        ["ansible-playbook", "-i", str(tmp_path), "playbooks/validate.yml"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
