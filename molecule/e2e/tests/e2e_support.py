"""What the end-to-end tests read: the inventory, the simulators, ThingsBoard and the database.

The lab VMs are containers of this machine's engine: commands reach them with
`docker exec <vm>`, and a VM's address is reachable from here (ThingsBoard's REST API is
published on its host). Everything a test asserts on is read the way an operator would
read it: devices' own counters from the simulators' /devices endpoint, telemetry and alarms
through ThingsBoard's REST API, stored rows from ThingsBoard's ts_kv table.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

SCENARIO = Path(__file__).resolve().parents[1]
REPO_ROOT = SCENARIO.parents[1]
INVENTORY = SCENARIO / "inventory"
CREDENTIALS = INVENTORY / "credentials"
# Measured figures, kept for the record (git-ignored) and printed.
FIGURES = SCENARIO / ".cache"

DB_SERVICE = "timescaledb_timescaledb"
SIM_SERVICE_PREFIX = "fleet_sim-"
METRICS_PORT = 9100
TENANT_ADMIN = "fleet-admin@tinyml.local"

T = TypeVar("T")

sys.path.insert(0, str(REPO_ROOT))  # for the repository's own test helpers
from tests.conftest import load_source  # noqa: E402
from tests.lab_helpers import run, vm  # noqa: E402

# An EMQX host's service and node names, as the emqx role makes them.
dns_label = load_source("plugins/filter/emqx_filters.py").emqx_dns_label


def changed_tasks(output: str) -> list[str]:
    """The "changed: [host]" lines of a run, with the task each belongs to."""
    task, found = "", []
    for line in output.splitlines():
        if line.startswith("TASK ["):
            task = line
        elif line.startswith("changed:"):
            found.append(f"{task} {line}")
    return found


def record(figure: str, value: Any) -> None:
    FIGURES.mkdir(exist_ok=True)
    path = FIGURES / "figures.json"
    figures = json.loads(path.read_text()) if path.exists() else {}
    figures[figure] = value
    path.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    print(f"FIGURE {figure} = {json.dumps(value)}")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, every: float = 2) -> T:
    """The first truthy result of probe, or an AssertionError naming what did not happen."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(every)


# ---------------------------------------------------------------------------- inventory


class Inventory:
    def __init__(self) -> None:
        listing = json.loads(run("ansible-inventory", "-i", str(INVENTORY), "--list").stdout)
        self.hostvars: dict[str, dict[str, Any]] = listing["_meta"]["hostvars"]
        self.groups: dict[str, list[str]] = {
            name: group.get("hosts", []) for name, group in listing.items() if name != "_meta"
        }

    def address(self, host: str) -> str:
        return str(self.hostvars[host]["lab_vm_address"])

    @property
    def manager(self) -> str:
        return self.groups["swarm_managers"][0]

    @property
    def db_host(self) -> str:
        return self.groups["timescaledb"][0]

    @property
    def tb_host(self) -> str:
        return self.groups["thingsboard"][0]

    def fleet(self, host: str) -> list[str]:
        """The device names provisioned for a simulator host (its credentials file)."""
        doc = json.loads((CREDENTIALS / "fleet" / f"{host}.json").read_text())
        return [str(device["name"]) for device in doc["devices"]]

    def credential(self, *parts: str) -> str:
        return CREDENTIALS.joinpath(*parts).read_text().strip()


# ---------------------------------------------------------------------------- simulators

_DEVICES_SNIPPET = (
    "import sys, urllib.request; "
    f"sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:{METRICS_PORT}/devices', "
    "timeout=20).read().decode())"
)


def task_containers(host: str, service: str) -> list[str]:
    return vm(
        host,
        "docker",
        "ps",
        "--quiet",
        "--filter",
        f"label=com.docker.swarm.service.name={service}",
    ).stdout.split()


def device_table(host: str) -> dict[str, dict[str, Any]]:
    """Every simulated device of a host by name: its own counters, read live."""
    table: dict[str, dict[str, Any]] = {}
    for container in task_containers(host, SIM_SERVICE_PREFIX + dns_label(host)):
        done = vm(host, "docker", "exec", container, "python3", "-c", _DEVICES_SNIPPET, check=False)
        if done.returncode == 0:
            table.update({row["name"]: row for row in json.loads(done.stdout)})
    return table


def simulators_started_ms(hosts: Iterable[str]) -> int:
    """When the last of the hosts' simulator processes started (their counters start there)."""
    started = []
    for host in hosts:
        for container in task_containers(host, SIM_SERVICE_PREFIX + dns_label(host)):
            iso = vm(host, "docker", "inspect", "--format", "{{.State.StartedAt}}", container)
            stamp = datetime.fromisoformat(re.sub(r"(\.\d{6})\d*", r"\1", iso.stdout.strip()))
            started.append(int(stamp.timestamp() * 1000))
    return max(started)


def device_tables(hosts: Iterable[str]) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for host in hosts:
        table.update(device_table(host))
    return table


# ---------------------------------------------------------------------------- ThingsBoard


class ThingsBoard:
    """The tenant administrator's view through ThingsBoard's REST API."""

    def __init__(self, url: str, username: str, password: str) -> None:
        self.url, self.username, self.password = url, username, password
        self._token = ""

    def login(self, username: str, password: str) -> str:
        """The JWT of a login, or "" when ThingsBoard refuses it."""
        body = json.dumps({"username": username, "password": password}).encode()
        request = urllib.request.Request(
            self.url + "/api/auth/login",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return str(json.load(response)["token"])
        except urllib.error.HTTPError as error:
            if error.code == 401:
                return ""
            raise

    def get(self, path: str, attempts: int = 10) -> Any:
        """A GET as the tenant administrator. Logs in again when the token is refused, and
        retries server errors for a while: the drills read ThingsBoard while its database
        restarts."""
        for attempt in range(1, attempts + 1):
            try:
                if not self._token:
                    self._token = self.login(self.username, self.password)
                    assert self._token, "ThingsBoard refused the tenant administrator"
                request = urllib.request.Request(
                    self.url + path, headers={"X-Authorization": f"Bearer {self._token}"}
                )
                with urllib.request.urlopen(request, timeout=30) as response:
                    return json.load(response)
            except urllib.error.HTTPError as error:
                if error.code == 401:
                    self._token = ""
                elif error.code < 500 or attempt == attempts:
                    raise
            except (urllib.error.URLError, TimeoutError, ConnectionError):
                if attempt == attempts:
                    raise
            time.sleep(2)
        raise AssertionError(f"GET {path}: no answer in {attempts} attempts")

    def pages(self, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        page = 0
        separator = "&" if "?" in path else "?"
        while True:
            doc = self.get(f"{path}{separator}pageSize=1000&page={page}")
            items.extend(doc["data"])
            if not doc.get("hasNext"):
                return items
            page += 1

    def device_ids(self) -> dict[str, str]:
        return {d["name"]: d["id"]["id"] for d in self.pages("/api/tenant/devices")}

    def latest(self, device_id: str, keys: str = "seq") -> dict[str, tuple[int, str]]:
        """Latest value of each key: (ts in ms, value)."""
        doc = self.get(f"/api/plugins/telemetry/DEVICE/{device_id}/values/timeseries?keys={keys}")
        return {key: (int(v[0]["ts"]), str(v[0]["value"])) for key, v in doc.items() if v}

    def latest_many(
        self, ids: dict[str, str], keys: str = "seq"
    ) -> dict[str, dict[str, tuple[int, str]]]:
        """Latest telemetry of many devices by name (a few requests at a time)."""
        with ThreadPoolExecutor(max_workers=6) as pool:
            values = pool.map(lambda name: self.latest(ids[name], keys), ids)
            return dict(zip(ids, values, strict=True))

    def alarms(self) -> list[dict[str, Any]]:
        return self.pages("/api/alarms?fetchOriginator=true")


def thingsboard(inventory: Inventory) -> ThingsBoard:
    port = inventory.hostvars[inventory.tb_host].get("thingsboard_http_port", 8080)
    return ThingsBoard(
        f"http://{inventory.address(inventory.tb_host)}:{port}",
        TENANT_ADMIN,
        inventory.credential("thingsboard", "tenant_admin_password"),
    )


# ---------------------------------------------------------------------------- database


def db_container(inventory: Inventory) -> str:
    ids = task_containers(inventory.db_host, DB_SERVICE)
    assert len(ids) == 1, ids
    return ids[0]


def psql(inventory: Inventory, sql: str) -> str:
    """SQL as ThingsBoard's database owner through the container's local socket."""
    return vm(
        inventory.db_host,
        "docker",
        "exec",
        db_container(inventory),
        "psql",
        "-X",
        "-A",
        "-t",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-U",
        "thingsboard",
        "-d",
        "thingsboard",
        "-c",
        sql,
    ).stdout.strip()


def stored_seqs(inventory: Inventory, device_ids: Iterable[str]) -> dict[str, set[int]]:
    """Every inference sequence number stored in ts_kv, by device id."""
    wanted = ",".join(f"'{uuid}'" for uuid in device_ids)
    rows = psql(
        inventory,
        "SELECT entity_id, long_v FROM ts_kv WHERE key = "
        "(SELECT key_id FROM key_dictionary WHERE key = 'seq') "
        f"AND entity_id IN ({wanted})",
    )
    stored: dict[str, set[int]] = {}
    for line in rows.splitlines():
        entity, seq = line.split("|")
        stored.setdefault(entity, set()).add(int(seq))
    return stored


# ---------------------------------------------------------------------------- accounting


@dataclass(frozen=True)
class Accounting:
    """Acknowledged QoS 1 inferences of a set of devices between two snapshots, and how
    many of them the database holds."""

    devices: int
    acked: int
    stored: int
    dropped_on_device: int
    short: dict[str, int]  # device -> acknowledged but not stored
    missing: dict[str, list[int]]  # device -> sequence numbers in its span not stored

    @property
    def lost(self) -> int:
        return sum(self.short.values())


def account(
    before: dict[str, dict[str, Any]],
    after: dict[str, dict[str, Any]],
    stored: dict[str, set[int]],
    ids: dict[str, str],
) -> Accounting:
    """Per device: inferences acknowledged between the snapshots (the broker took them:
    PUBACK) against the stored ones whose sequence numbers fall in the same span. A device
    numbers its inferences 1, 2, 3... and publishes them in order, so the span
    (last acked before, last acked after] holds exactly the inferences acknowledged in
    between, plus any it dropped from a full offline buffer (counted apart)."""
    acked = stored_total = dropped = 0
    short: dict[str, int] = {}
    missing: dict[str, list[int]] = {}
    for name, first in before.items():
        last = after[name]
        span = range(first["last_acked_seq"] + 1, last["last_acked_seq"] + 1)
        n_acked = last["acked"] - first["acked"]
        n_stored = len(stored.get(ids[name], set()).intersection(span))
        acked += n_acked
        stored_total += n_stored
        dropped += last["dropped"] - first["dropped"]
        if n_stored < n_acked:
            short[name] = n_acked - n_stored
            missing[name] = sorted(set(span) - stored.get(ids[name], set()))
    return Accounting(len(before), acked, stored_total, dropped, short, missing)


@contextmanager
def following(host: str, service: str) -> Iterator[list[str]]:
    """The lines a service's running container on a host logs meanwhile, kept here: they
    outlive the VM, whose stop ends the stream. Read from the container's log file, which
    needs no engine (the VM's engine stops answering as the VM shuts down)."""
    container = task_containers(host, service)[0]
    path = vm(host, "docker", "inspect", "--format", "{{.LogPath}}", container).stdout.strip()
    stream = subprocess.Popen(
        ["docker", "exec", host, "tail", "--lines=1", "--follow=name", path],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # tail's complaint when the VM's files go away
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for raw in stream.stdout or ():
            if ready.is_set():
                lines.append(json.loads(raw).get("log", ""))
            ready.set()  # the file's last line so far: the stream is up

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert ready.wait(30), f"cannot follow the log of {service} on {host}"
    try:
        yield lines
    finally:
        try:
            stream.wait(timeout=30)
        except subprocess.TimeoutExpired:
            stream.terminate()
        reader.join(timeout=5)


def log_problems(host: str, service: str, since: str) -> list[str]:
    """The warning and error lines a service's containers on a host logged since a time."""
    lines: list[str] = []
    for container in vm(
        host,
        "docker",
        "ps",
        "--all",
        "--quiet",
        "--filter",
        f"label=com.docker.swarm.service.name={service}",
    ).stdout.split():
        done = vm(host, "docker", "logs", "--since", since, container, check=False)
        lines += [
            line
            for line in (done.stdout + done.stderr).splitlines()
            if re.search(r"WARN|ERROR|Exception|Traceback", line)
        ]
    return lines[-40:]
