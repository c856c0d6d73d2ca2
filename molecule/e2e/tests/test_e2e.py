"""The whole mission on three lab VMs: site.yml's fleet reports to ThingsBoard, alarms reach
the devices, and the platform survives the loss of a VM and a database restart.

The tests run in this order right after the first site.yml run (the scenario's idempotence
step follows them, so a second site.yml run after the drills must change nothing). The drills'
figures are printed (FIGURE ...) and kept in molecule/e2e/.cache/figures.json.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    INVENTORY,
    Accounting,
    Inventory,
    ThingsBoard,
    account,
    changed_tasks,
    db_container,
    device_table,
    device_tables,
    dns_label,
    following,
    log_problems,
    psql,
    record,
    simulators_started_ms,
    stored_seqs,
    thingsboard,
    wait_for,
)

from tests.lab_helpers import playbook, run, vm

# The alarm roles/tb_gateway's rule chain raises on inactivity.
OFFLINE_ALARM = "Device offline"
# Issue acceptance: telemetry within 60 s of site.yml, one message end to end within 5 s.
FRESH_WITHIN_S = 60
END_TO_END_WITHIN_S = 5
STARTED = time.time()


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return Inventory()


@pytest.fixture(scope="module")
def tb(inventory: Inventory) -> ThingsBoard:
    return thingsboard(inventory)


@pytest.fixture(scope="module")
def ids(tb: ThingsBoard, inventory: Inventory) -> dict[str, str]:
    """ThingsBoard device id of every provisioned device."""
    known = tb.device_ids()
    fleet = [name for host in inventory.groups["simulators"] for name in inventory.fleet(host)]
    assert len(fleet) >= 300, "the scenario's fleet must have at least 300 devices"
    missing = sorted(set(fleet) - set(known))
    assert not missing, f"devices not provisioned in ThingsBoard: {missing[:5]}..."
    return {name: known[name] for name in fleet}


# ---------------------------------------------------------------------------- data flow


def test_every_device_reports_within_60_s_of_site_yml(tb: ThingsBoard, ids: dict[str, str]) -> None:
    """Every provisioned device has an inference in ThingsBoard newer than 60 s, read
    through the REST API, at most 60 s after site.yml finished."""

    def stale() -> list[str]:
        now_ms = time.time() * 1000
        latest = tb.latest_many(ids)
        return [n for n, v in latest.items() if "seq" not in v or now_ms - v["seq"][0] > 60_000]

    deadline = STARTED + FRESH_WITHIN_S
    while (late := stale()) and time.time() < deadline:
        time.sleep(2)
    record("fleet_fresh_after_site_yml_s", round(time.time() - STARTED, 1))
    assert not late, f"{len(late)} devices without recent telemetry, e.g. {late[:5]}"


def test_an_inference_reaches_thingsboard_within_5_s(
    inventory: Inventory, tb: ThingsBoard, ids: dict[str, str]
) -> None:
    """The latest inference a device had acknowledged by EMQX is ThingsBoard's latest
    telemetry of that device within 5 s: a few devices on every simulator host."""
    delays = []
    for host in inventory.groups["simulators"]:
        table = device_table(host)
        for name in sorted(table)[:3]:
            target = device_table(host)[name]["last_acked_seq"]
            acked_at = time.monotonic()
            wait_for(
                f"{name}'s inference {target} in ThingsBoard",
                partial(reached, tb, ids[name], target),
                timeout=END_TO_END_WITHIN_S * 4,
                every=0.2,
            )
            delays.append(time.monotonic() - acked_at)
    record("emqx_to_thingsboard_max_s", round(max(delays), 2))
    assert max(delays) <= END_TO_END_WITHIN_S, delays


def reached(tb: ThingsBoard, device_id: str, seq: int) -> bool:
    return int(tb.latest(device_id).get("seq", (0, "0"))[1]) >= seq


def test_faulty_devices_raise_alarms_and_receive_them(
    inventory: Inventory, tb: ThingsBoard, ids: dict[str, str]
) -> None:
    """The fleet's injected faults (inventory fleet_classes) raise alarms in ThingsBoard,
    and every device with an alarm has received it on its alert topic."""
    names = {device_id: name for name, device_id in ids.items()}
    # A simulator's counters start with its process: older alarms went to earlier processes.
    since_ms = simulators_started_ms(inventory.groups["simulators"])

    def alarmed() -> dict[str, set[str]]:
        by_class: dict[str, set[str]] = {}
        for alarm in tb.alarms():
            name = names.get(alarm["originator"]["id"])
            # Inactivity alarms are not faults (a VM of an earlier drill may have been down).
            if name and alarm["createdTime"] > since_ms and alarm["type"] != OFFLINE_ALARM:
                by_class.setdefault(name.split("-")[-2], set()).add(name)
        return by_class if len(by_class) == len(inventory_classes(inventory)) else {}

    by_class = wait_for("an alarm for each device class", alarmed, timeout=180, every=5)
    devices = set().union(*by_class.values())

    def not_told() -> list[str]:
        table = device_tables(inventory.groups["simulators"])
        return [name for name in devices if table[name]["alerts_received"] < 1]

    waiting = not_told()
    deadline = time.monotonic() + 30
    while waiting and time.monotonic() < deadline:
        time.sleep(3)
        waiting = not_told()
    record("alarmed_devices", {cls: len(found) for cls, found in sorted(by_class.items())})
    assert not waiting, f"alarms that never reached their device: {waiting}"


def inventory_classes(inventory: Inventory) -> list[str]:
    host = inventory.groups["simulators"][0]
    return [c["name"] for c in inventory.hostvars[host]["fleet_classes"]]


# ---------------------------------------------------------------------------- placement, login


def service_nodes(inventory: Inventory) -> dict[str, set[str]]:
    """Running task nodes of every service (node names = inventory host names)."""
    services = vm(inventory.manager, "docker", "service", "ls", "--format", "{{.Name}}")
    found: dict[str, set[str]] = {}
    for service in services.stdout.split():
        tasks = vm(
            inventory.manager,
            "docker",
            "service",
            "ps",
            service,
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Node}} {{.CurrentState}}",
        )
        found[service] = {
            line.split()[0] for line in tasks.stdout.splitlines() if " Running " in f" {line} "
        }
    return found


def test_services_run_where_the_inventory_says(inventory: Inventory) -> None:
    nodes = service_nodes(inventory)
    groups = inventory.groups
    for host in groups["emqx"]:
        assert nodes[f"emqx_{dns_label(host)}"] == {host}
    for host in groups["simulators"]:
        assert nodes[f"fleet_sim-{dns_label(host)}"] == {host}
    assert nodes["timescaledb_timescaledb"] == set(groups["timescaledb"])
    thingsboard_services = [s for s in nodes if s.startswith("thingsboard_")]
    gateway_services = [s for s in nodes if s.startswith("tb-gateway_")]
    assert thingsboard_services
    assert gateway_services
    for service in thingsboard_services + gateway_services:
        assert nodes[service] <= set(groups["thingsboard"]), (service, nodes[service])


def test_default_credentials_are_refused(tb: ThingsBoard) -> None:
    """ThingsBoard's demo logins are refused (EMQX's admin/public: molecule/emqx)."""
    for username, password in [
        ("sysadmin@thingsboard.org", "sysadmin"),
        ("tenant@thingsboard.org", "tenant"),
    ]:
        assert tb.login(username, password) == "", username
    assert tb.login(tb.username, tb.password)


# ---------------------------------------------------------------------------- drills


def wait_drained(
    tb: ThingsBoard, ids: dict[str, str], snapshot: dict[str, dict[str, Any]], timeout: float
) -> None:
    """Until ThingsBoard has every device's last acknowledged inference of the snapshot."""

    def behind() -> list[str]:
        latest = tb.latest_many({name: ids[name] for name in snapshot})
        return [
            name
            for name, row in snapshot.items()
            if int(latest[name].get("seq", (0, "0"))[1]) < row["last_acked_seq"]
        ]

    late = behind()
    deadline = time.monotonic() + timeout
    while late and time.monotonic() < deadline:
        time.sleep(3)
        late = behind()


def loss_report(
    inventory: Inventory,
    books: Accounting,
    before: dict[str, dict[str, Any]],
    after: dict[str, dict[str, Any]],
    *,
    stopped_node_log: list[str],
    since: str,
) -> str:
    """Where the devices that lost inferences were connected, which sequence numbers are
    missing, how the stopped EMQX node went, and what the gateway and ThingsBoard logged
    meanwhile."""
    lines = [
        f"{name}: missing seqs {books.missing[name]} of ({before[name]['last_acked_seq']}, "
        f"{after[name]['last_acked_seq']}], broker {before[name]['endpoint']} -> "
        f"{after[name]['endpoint']}"
        for name in books.short
    ]
    lines += [f"stopped EMQX node: {line.rstrip()}" for line in stopped_node_log]
    gateway_host = inventory.tb_host
    for service in ("tb-gateway_gateway", "thingsboard_tb-node"):
        lines += [f"{service}: {line}" for line in log_problems(gateway_host, service, since)]
    return "\n".join(lines)


@pytest.fixture
def stopped_vm(inventory: Inventory) -> Iterator[str]:
    """An EMQX and simulator host that runs neither the manager, ThingsBoard nor the
    database: the VM the failure drill powers off (started again in any case)."""
    spared = {inventory.manager, inventory.tb_host, inventory.db_host}
    host = next(h for h in inventory.groups["emqx"] if h not in spared)
    assert host in inventory.groups["simulators"]
    yield host
    run("docker", "start", host)


def test_failure_drill_a_vm_with_an_emqx_node_stops(
    inventory: Inventory, tb: ThingsBoard, ids: dict[str, str], stopped_vm: str
) -> None:
    hosts = inventory.groups["simulators"]
    survivors = [h for h in hosts if h != stopped_vm]
    before = device_tables(survivors)
    lost_vm_devices = device_table(stopped_vm)
    assert before
    assert lost_vm_devices
    assert all(row["connected"] for row in before.values())

    stopped_at, stopped_ms = time.monotonic(), int(time.time() * 1000)
    stopped_at_iso = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with following(stopped_vm, f"emqx_{dns_label(stopped_vm)}") as stopped_node_log:
        run("docker", "stop", stopped_vm)
    handover = [line for line in stopped_node_log if "handover" in line]

    def reconnected() -> bool:
        table = device_tables(survivors)
        return all(
            row["connected"] and row["acked"] > before[name]["acked"] for name, row in table.items()
        )

    wait_for("devices on the surviving VMs publishing again", reconnected, timeout=180)
    reconnect_s = time.monotonic() - stopped_at

    def fresh_in_thingsboard() -> bool:
        latest = tb.latest_many({name: ids[name] for name in before})
        return all(v.get("seq", (0, ""))[0] > stopped_ms for v in latest.values())

    wait_for("telemetry of every surviving device in ThingsBoard", fresh_in_thingsboard, 180, 3)
    recovery_s = time.monotonic() - stopped_at

    time.sleep(10)
    after = device_tables(survivors)
    wait_drained(tb, ids, after, timeout=120)
    books = account(before, after, stored_seqs(inventory, ids.values()), ids)
    on_stopped_broker = {
        name
        for name, row in before.items()
        if row["endpoint"].startswith(f"{dns_label(stopped_vm)}.")
    }
    record(
        "failure_drill",
        {
            "stopped_vm": stopped_vm,
            "surviving_devices": books.devices,
            "devices_on_stopped_vm": len(lost_vm_devices),
            "reconnects_on_survivors": sum(
                after[n]["reconnects"] - before[n]["reconnects"] for n in before
            ),
            "devices_publishing_again_s": round(reconnect_s, 1),
            "end_to_end_recovery_s": round(recovery_s, 1),
            "acked": books.acked,
            "stored": books.stored,
            "lost": books.lost,
            "devices_with_losses": len(books.short),
            "devices_on_the_stopped_broker": len(on_stopped_broker),
            "dropped_on_device": books.dropped_on_device,
            "stopped_node_handover": handover[-1].split("] ", 1)[-1].strip() if handover else None,
        },
    )
    assert books.acked > 0
    if books.short:
        print(
            loss_report(
                inventory,
                books,
                before,
                after,
                stopped_node_log=stopped_node_log,
                since=stopped_at_iso,
            )
        )
    # Nothing is lost, also by the devices that were on the stopped node: a VM that shuts
    # down stops its EMQX node cleanly, and the node hands over what it acknowledged before
    # it goes (EMQX routes a message before it acknowledges it).
    assert books.short == {}, books.short

    restarted_at = time.monotonic()
    run("docker", "start", stopped_vm)
    names = list(lost_vm_devices)
    back_ms = int(time.time() * 1000)

    def resumed() -> bool:
        latest = tb.latest_many({name: ids[name] for name in names})
        return all(v.get("seq", (0, ""))[0] > back_ms for v in latest.values())

    wait_for(f"the devices of {stopped_vm} reporting again", resumed, timeout=300, every=5)
    record("stopped_vm_devices_resumed_s", round(time.monotonic() - restarted_at, 1))


def test_database_restart_drill(inventory: Inventory, tb: ThingsBoard, ids: dict[str, str]) -> None:
    """Kill the database's task (swarm restarts it) and count, per hop, what the fleet's
    acknowledged inferences became: the device (dropped from its offline buffer), the
    gateway (never reached ThingsBoard) and ThingsBoard (reached it, not stored)."""
    hosts = inventory.groups["simulators"]
    before = device_tables(hosts)
    old = db_container(inventory)
    killed_at, killed_ms = time.monotonic(), int(time.time() * 1000)
    vm(inventory.db_host, "docker", "kill", old)

    def db_back() -> bool:
        try:
            return db_container(inventory) != old and psql(inventory, "SELECT 1") == "1"
        except AssertionError:
            return False

    wait_for("the database accepting connections again", db_back, timeout=300)
    db_down_s = time.monotonic() - killed_at

    def fresh() -> bool:
        latest = tb.latest_many(ids)
        return all(v.get("seq", (0, ""))[0] > killed_ms for v in latest.values())

    wait_for("telemetry of every device after the restart", fresh, timeout=240, every=5)
    recovery_s = time.monotonic() - killed_at
    after = device_tables(hosts)
    wait_drained(tb, ids, after, timeout=120)
    latest = tb.latest_many(ids)
    books = account(before, after, stored_seqs(inventory, ids.values()), ids)
    never_reached_tb = sum(
        1 for name, row in after.items() if int(latest[name]["seq"][1]) < row["last_acked_seq"]
    )
    record(
        "database_restart_drill",
        {
            "devices": books.devices,
            "database_back_s": round(db_down_s, 1),
            "end_to_end_recovery_s": round(recovery_s, 1),
            "acked": books.acked,
            "stored": books.stored,
            "lost_on_devices_dropped": books.dropped_on_device,
            "devices_whose_last_acked_never_reached_thingsboard": never_reached_tb,
            "lost_between_broker_and_database": books.lost,
            "devices_with_losses": len(books.short),
        },
    )
    assert books.acked > 0


# ---------------------------------------------------------------------------- scaling


def test_editing_one_hosts_device_count_changes_only_its_service(
    inventory: Inventory,
) -> None:
    host = inventory.groups["simulators"][1]
    host_vars = INVENTORY / "host_vars" / f"{host}.yml"
    original = host_vars.read_text()
    counts = inventory.hostvars[host]["fleet_devices"]
    first_class = sorted(counts)[0]
    services = [f"fleet_sim-{dns_label(h)}" for h in inventory.groups["simulators"]]

    def versions() -> dict[str, tuple[str, str]]:
        """Each service's spec and running tasks. `docker stack deploy` sends every service
        of the stack to the swarm, so all get a new version index; a service whose spec is
        unchanged keeps its tasks running."""
        found = {}
        for service in services:
            spec = vm(inventory.manager, "docker", "service", "inspect", service)
            tasks = vm(
                inventory.manager,
                "docker",
                "service",
                "ps",
                "--quiet",
                "--filter",
                "desired-state=running",
                service,
            )
            found[service] = (
                json.dumps(json.loads(spec.stdout)[0]["Spec"], sort_keys=True),
                " ".join(sorted(tasks.stdout.split())),
            )
        return found

    before = versions()
    try:
        Path(host_vars).write_text(
            original.replace(
                f"{first_class}: {counts[first_class]}", f"{first_class}: {counts[first_class] + 5}"
            )
        )
        done = playbook(INVENTORY, "playbooks/provision.yml", "playbooks/fleet.yml")
        assert done.returncode == 0, done.stdout[-3000:]
        after = versions()
        changed = {s for s in services if after[s][0] != before[s][0]}
        restarted = {s for s in services if after[s][1] != before[s][1]}
        record("scale_one_host_changed_tasks", len(changed_tasks(done.stdout)))
        assert changed == {f"fleet_sim-{dns_label(host)}"}
        assert restarted == changed
        wanted = sum(counts.values()) + 5
        wait_for(
            f"{wanted} devices on {host}",
            lambda: len(device_table(host)) == wanted,
            timeout=180,
            every=5,
        )
    finally:
        # Back to the inventory as committed, so that the idempotence step finds it.
        Path(host_vars).write_text(original)
        restored = playbook(INVENTORY, "playbooks/provision.yml", "playbooks/fleet.yml")
    assert restored.returncode == 0, restored.stdout[-3000:]
