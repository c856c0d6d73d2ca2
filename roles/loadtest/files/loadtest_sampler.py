#!/usr/bin/env python3
"""Load-test sampler: runs on one swarm node (Python 3 standard library and the docker CLI).

``run`` takes a sample every ``--interval`` seconds at ``--start + k * --interval`` (so the
samplers of every node sample at the same instants) and appends JSON lines to ``--out``:

- ``node``: the node's CPU time and memory. On a machine (the init process in the root
  cgroup) from /proc/stat and /proc/meminfo; on a node that is itself a container (the lab's
  "VMs") from the cgroups of its init and of every container its engine runs.
- ``container``: CPU time and memory of every container on the node, from its cgroup.
- ``sim``: the counters of every simulator replica on the node (``/metrics`` on the metrics
  port, read at the container's ``docker_gwbridge`` address, which only its node reaches).
- ``db`` (with ``--db-service``, on the database host): rows inserted into ThingsBoard's
  ``ts_kv`` so far (pg_stat_user_tables, over the hypertable's chunks too).
- ``latency`` / ``latency_total`` (with ``--db-service``, after the last sample): the
  device-to-database latency of the messages that arrived in each interval, from the
  arrival table that ``db-prepare`` fills.

``db-prepare`` creates schema ``tinyml_loadtest`` (owned by ThingsBoard's role) with an
arrival table and an AFTER INSERT trigger on ``ts_kv`` for one time-series key that every
inference message carries once: each such row records its device timestamp (``ts``) and the
database's clock when it was inserted. The trigger stops recording after ``--until``, so a
run that is interrupted before ``db-cleanup`` costs one function call per message, nothing
more. ``db-cleanup`` drops the schema, the trigger with it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA = "tinyml_loadtest"
TRIGGER = "tinyml_loadtest_arrival"
CGROUP_ROOT = Path("/sys/fs/cgroup")


# ---- docker -------------------------------------------------------------------------------


def docker(*args: str, stdin: str | None = None, timeout: float = 60) -> str:
    done = subprocess.run(
        ["docker", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"docker {args[0]}: {done.stderr.strip() or done.returncode}")
    return done.stdout


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    pid: int
    labels: dict[str, str]
    started: float = 0.0

    @property
    def service(self) -> str:
        return self.labels.get("com.docker.swarm.service.name", self.name)


def docker_time(text: str) -> float:
    """Docker's RFC 3339 time with nanoseconds (2026-11-22T21:24:52.784107067Z) -> epoch s."""
    if not text or text.startswith("0001-"):
        return 0.0
    whole, _, rest = text.rstrip("Z").partition(".")
    stamp = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    digits = "".join(itertools.takewhile(str.isdigit, rest))  # up to a "+00:00" offset
    return stamp + (float("0." + digits) if digits else 0.0)


def containers() -> list[Container]:
    ids = docker("ps", "--quiet", "--no-trunc").split()
    if not ids:
        return []
    found = []
    for doc in json.loads(docker("inspect", *ids)):
        if not doc.get("State", {}).get("Running"):
            continue
        found.append(
            Container(
                id=doc["Id"],
                name=doc["Name"].lstrip("/"),
                pid=int(doc["State"]["Pid"]),
                labels=doc["Config"].get("Labels") or {},
                started=docker_time(doc["State"].get("StartedAt", "")),
            )
        )
    return found


def gwbridge_addresses() -> dict[str, str]:
    """Container id -> its address on docker_gwbridge (swarm task containers only)."""
    doc = json.loads(docker("network", "inspect", "docker_gwbridge"))[0]
    return {
        cid: entry["IPv4Address"].split("/")[0]
        for cid, entry in (doc.get("Containers") or {}).items()
        if entry.get("IPv4Address")
    }


# ---- cgroups and /proc --------------------------------------------------------------------


def cgroup_paths(text: str) -> dict[str, str]:
    """/proc/<pid>/cgroup -> {"cpu": path, "memory": path, "unified": path} (what is present)."""
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        names = controllers.split(",")
        if controllers == "":
            paths["unified"] = path
        if "cpuacct" in names:
            paths["cpu"] = path
        if "memory" in names:
            paths["memory"] = path
    return paths


def container_root(path: str) -> str:
    """The cgroup of a container whose init is systemd: its init sits in <root>/init.scope."""
    return path.removesuffix("/init.scope") or "/"


def outermost(paths: Iterable[str]) -> list[str]:
    """Drop every cgroup that lies inside another one of the set (nested engines)."""
    unique = sorted(set(paths))
    return [
        p for p in unique if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in unique)
    ]


def unified() -> bool:
    return (CGROUP_ROOT / "cgroup.controllers").exists()


def v1_dir(controller: str) -> Path:
    for name in (controller, "cpu,cpuacct", "cpuacct,cpu"):
        if (CGROUP_ROOT / name).is_dir():
            return CGROUP_ROOT / name
    raise FileNotFoundError(f"no cgroup v1 hierarchy for {controller}")


def memory_stat(text: str) -> dict[str, int]:
    stat: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            stat[key] = int(value)
    return stat


def cgroup_usage(paths: dict[str, str]) -> tuple[int, int]:
    """(CPU time in ns, memory in bytes without inactive page cache, as docker stats counts)."""
    if unified():
        base = CGROUP_ROOT / paths["unified"].lstrip("/")
        cpu = memory_stat((base / "cpu.stat").read_text())["usage_usec"] * 1000
        current = int((base / "memory.current").read_text())
        inactive = memory_stat((base / "memory.stat").read_text()).get("inactive_file", 0)
        return cpu, max(current - inactive, 0)
    cpu_dir = v1_dir("cpuacct") / paths["cpu"].lstrip("/")
    mem_dir = v1_dir("memory") / paths["memory"].lstrip("/")
    cpu = int((cpu_dir / "cpuacct.usage").read_text())
    usage = int((mem_dir / "memory.usage_in_bytes").read_text())
    inactive = memory_stat((mem_dir / "memory.stat").read_text()).get("total_inactive_file", 0)
    return cpu, max(usage - inactive, 0)


def proc_stat_busy_ns(text: str, ticks_per_s: int) -> int:
    """Busy CPU time of the whole machine from /proc/stat (everything but idle and iowait)."""
    fields = text.splitlines()[0].split()
    assert fields[0] == "cpu"
    user, nice, system, _idle, _iowait, irq, softirq, *rest = (int(v) for v in fields[1:])
    steal = rest[0] if rest else 0
    return (user + nice + system + irq + softirq + steal) * 1_000_000_000 // ticks_per_s


def meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo in bytes."""
    info: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        number = value.split()
        if number:
            info[key] = int(number[0]) * (1024 if value.strip().endswith("kB") else 1)
    return info


Usage = tuple[dict[str, str], int, int]  # cgroup paths, CPU ns, memory bytes


def container_usage(c: Container) -> Usage | None:
    """A container's cgroups and usage; None when it stopped while being read."""
    try:
        paths = cgroup_paths(Path(f"/proc/{c.pid}/cgroup").read_text())
        cpu, mem = cgroup_usage(paths)
    except (OSError, KeyError, ValueError):
        return None
    return paths, cpu, mem


def node_sample(inner: list[Container], usages: dict[str, Usage]) -> dict[str, Any]:
    """The node's CPU time and memory; ``cpu_ns_by_cgroup`` maps each cgroup counted to
    [CPU ns, start time], so that a reader can tell containers that came and went."""
    mem = meminfo(Path("/proc/meminfo").read_text())
    record: dict[str, Any] = {
        "kind": "node",
        "cpus": os.cpu_count() or 1,
        "mem_total_bytes": mem.get("MemTotal", 0),
    }
    key = "unified" if unified() else "cpu"
    own = {
        k: container_root(v) for k, v in cgroup_paths(Path("/proc/1/cgroup").read_text()).items()
    }
    own_root = own.get(key, "/")
    if own_root == "/":
        # A machine (VM or bare metal): the kernel's own accounting.
        busy = proc_stat_busy_ns(Path("/proc/stat").read_text(), os.sysconf("SC_CLK_TCK"))
        used = mem.get("MemTotal", 0) - mem.get("MemAvailable", 0)
        return record | {
            "source": "proc",
            "cpu_ns": busy,
            "mem_bytes": used,
            "cpu_ns_by_cgroup": {"/proc/stat": [busy, 0]},
        }
    # A container (the lab): its own cgroup plus those of the containers its engine runs,
    # which an engine with the cgroupfs driver creates beside, not inside, its own. A
    # container's cgroup that is the root or holds the node's own (a process between
    # cgroups while it starts or stops) is not the container's: leave it out.
    own_cpu, own_mem = cgroup_usage(own)
    counted: dict[str, tuple[int, int, float]] = {own_root: (own_cpu, own_mem, 0.0)}
    for c in inner:
        usage = usages.get(c.id)
        if usage is None or key not in usage[0]:
            continue
        path = usage[0][key]
        if path == "/" or own_root.startswith(path.rstrip("/") + "/"):
            continue
        counted[path] = (usage[1], usage[2], c.started)
    keep = set(outermost(counted))
    by_cgroup = {p: counted[p] for p in sorted(keep)}
    return record | {
        "source": "cgroup-v2" if unified() else "cgroup-v1",
        "cgroups": len(by_cgroup),
        "cpu_ns": sum(v[0] for v in by_cgroup.values()),
        "mem_bytes": sum(v[1] for v in by_cgroup.values()),
        "cpu_ns_by_cgroup": {p: [v[0], v[2]] for p, v in by_cgroup.items()},
    }


# ---- simulators ---------------------------------------------------------------------------


def prometheus_values(text: str, prefix: str = "tinyml_sim_") -> dict[str, float]:
    """Unlabelled samples of a Prometheus text exposition, without the prefix and `_total`."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith(prefix) or "{" in line:
            continue
        name, _, value = line.partition(" ")
        name = name.removeprefix(prefix)
        if name.endswith("_created"):
            continue
        values[name.removesuffix("_total")] = float(value.split()[0])
    return values


def sim_samples(inner: list[Container], stack: str, port: int) -> list[dict[str, Any]]:
    sims = [c for c in inner if c.labels.get("com.docker.stack.namespace") == stack]
    if not sims:
        return []
    addresses = gwbridge_addresses()
    records = []
    for c in sims:
        record: dict[str, Any] = {
            "kind": "sim",
            "container": c.id[:12],
            "service": c.service,
            "task": c.labels.get("com.docker.swarm.task.name", c.name),
            "started": c.started,
        }
        address = addresses.get(c.id)
        if address is None:
            record["error"] = "not on docker_gwbridge"
        else:
            try:
                url = f"http://{address}:{port}/metrics"
                with urllib.request.urlopen(url, timeout=10) as response:
                    record["metrics"] = prometheus_values(response.read().decode())
            except OSError as exc:
                record["error"] = str(exc)
        records.append(record)
    return records


# ---- database -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    service: str
    user: str
    name: str

    def container(self, inner: list[Container] | None = None) -> Container:
        candidates = inner if inner is not None else containers()
        found = [c for c in candidates if c.service == self.service]
        if len(found) != 1:
            raise RuntimeError(f"{len(found)} running containers of service {self.service}")
        return found[0]

    def sql(
        self, statements: str, inner: list[Container] | None = None, *, atomic: bool = False
    ) -> str:
        """Run SQL through psql in the database container (local socket, as the superuser)."""
        psql = ["psql", "--no-psqlrc", "--quiet", "--no-align", "--tuples-only"]
        psql += ["--set=ON_ERROR_STOP=1", f"--username={self.user}", f"--dbname={self.name}"]
        if atomic:
            psql.append("--single-transaction")
        return docker("exec", "--interactive", self.container(inner).id, *psql, stdin=statements)


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


TS_KV_INSERTED = """
SELECT coalesce(sum(s.n_tup_ins), 0) FROM pg_stat_user_tables s
 WHERE s.relid = 'ts_kv'::regclass
    OR s.relid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'ts_kv'::regclass);
"""


def prepare_sql(app_role: str, key: str, until_ms: int) -> str:
    """The arrival table and trigger, created as ThingsBoard's role (the owner of ts_kv)."""
    return f"""
SET ROLE {ident(app_role)};
DROP SCHEMA IF EXISTS {SCHEMA} CASCADE;
CREATE SCHEMA {SCHEMA};
CREATE TABLE {SCHEMA}.arrival (
    entity_id uuid NOT NULL,
    ts bigint NOT NULL,
    arrived_ms bigint NOT NULL
);
CREATE INDEX arrival_arrived ON {SCHEMA}.arrival (arrived_ms);
CREATE FUNCTION {SCHEMA}.record() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    arrived bigint := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
BEGIN
    IF arrived <= {int(until_ms)} THEN
        INSERT INTO {SCHEMA}.arrival VALUES (NEW.entity_id, NEW.ts, arrived);
    END IF;
    RETURN NULL;
END
$fn$;
DO $do$
DECLARE
    key_id integer;
BEGIN
    SELECT d.key_id INTO key_id FROM key_dictionary d WHERE d.key = {literal(key)};
    IF key_id IS NULL THEN
        RAISE EXCEPTION 'no time-series key % in key_dictionary yet', {literal(key)};
    END IF;
    EXECUTE format('CREATE TRIGGER {TRIGGER} AFTER INSERT ON ts_kv FOR EACH ROW '
                   'WHEN (NEW.key = %s) EXECUTE FUNCTION {SCHEMA}.record()', key_id);
END
$do$;
SELECT 'prepared';
"""


def cleanup_sql(app_role: str) -> str:
    return f"SET ROLE {ident(app_role)};\nDROP SCHEMA IF EXISTS {SCHEMA} CASCADE;\n"


def latency_sql(start_ms: int, interval_ms: int, end_ms: int) -> str:
    """Per interval of arrival and over the run: count and percentiles of arrival - ts (ms)."""
    stats = (
        "count(*) AS count, "
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY arrived_ms - ts) AS p50_ms, "
        "percentile_cont(0.99) WITHIN GROUP (ORDER BY arrived_ms - ts) AS p99_ms, "
        "max(arrived_ms - ts) AS max_ms, min(arrived_ms - ts) AS min_ms"
    )
    window = f"arrived_ms >= {int(start_ms)} AND arrived_ms < {int(end_ms)}"
    return f"""
SELECT json_build_object(
  'buckets', (SELECT coalesce(json_agg(b ORDER BY b.bucket), '[]'::json) FROM (
      SELECT (arrived_ms - {int(start_ms)}) / {int(interval_ms)} AS bucket, {stats}
        FROM {SCHEMA}.arrival WHERE {window} GROUP BY 1) b),
  'total', (SELECT row_to_json(t) FROM (
      SELECT {stats}, count(DISTINCT entity_id) AS devices
        FROM {SCHEMA}.arrival WHERE {window}) t));
"""


# ---- commands -----------------------------------------------------------------------------


def write(out: Path, records: Iterable[dict[str, Any]]) -> None:
    with out.open("a") as f:
        for record in records:
            f.write(json.dumps(record, separators=(",", ":")) + "\n")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("")
    db = Database(args.db_service, args.db_user, args.db_name) if args.db_service else None
    for k in range(args.count + 1):
        target = args.start + k * args.interval
        time.sleep(max(0.0, target - time.time()))
        stamp = {"node": args.node, "k": k, "t": round(time.time(), 3)}
        records: list[dict[str, Any]] = []
        try:
            inner = containers()
            usages = {c.id: u for c in inner if (u := container_usage(c)) is not None}
            records.append(node_sample(inner, usages))
            for c in inner:
                if c.id in usages:
                    _, cpu, mem = usages[c.id]
                    records.append(
                        {"kind": "container", "name": c.name, "service": c.service}
                        | {"cpu_ns": cpu, "mem_bytes": mem, "started": c.started}
                    )
            records += sim_samples(inner, args.sim_stack, args.metrics_port)
            if db is not None:
                inserted = int(db.sql(TS_KV_INSERTED, inner).strip() or 0)
                records.append({"kind": "db", "ts_kv_inserted": inserted})
        except (OSError, RuntimeError, ValueError, KeyError, subprocess.SubprocessError) as exc:
            records.append({"kind": "error", "error": f"{type(exc).__name__}: {exc}"})
        write(out, ({**stamp, **r} for r in records))
    if db is not None and args.latency:
        write(out, ({"node": args.node, **r} for r in latency_records(db, args)))
    return 0


def latency_records(db: Database, args: argparse.Namespace) -> list[dict[str, Any]]:
    time.sleep(2)  # let the last batches of the final interval commit
    start_ms = int(args.start * 1000)
    interval_ms = int(args.interval * 1000)
    end_ms = start_ms + args.count * interval_ms
    try:
        doc = json.loads(db.sql(latency_sql(start_ms, interval_ms, end_ms)))
    except (RuntimeError, ValueError, subprocess.SubprocessError) as exc:
        return [{"kind": "error", "error": f"latency: {exc}"}]
    records = [{"kind": "latency", **b} for b in doc["buckets"]]
    records.append({"kind": "latency_total", **doc["total"]})
    return records


def db_prepare(args: argparse.Namespace) -> int:
    db = Database(args.db_service, args.db_user, args.db_name)
    print(db.sql(prepare_sql(args.app_role, args.key, int(args.until * 1000)), atomic=True))
    return 0


def db_cleanup(args: argparse.Namespace) -> int:
    db = Database(args.db_service, args.db_user, args.db_name)
    db.sql(cleanup_sql(args.app_role), atomic=True)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    def database(cmd: argparse.ArgumentParser, required: bool) -> None:
        cmd.add_argument("--db-service", required=required, help="swarm service of the database")
        cmd.add_argument("--db-user", default="postgres", help="superuser (local socket)")
        cmd.add_argument("--db-name", default="thingsboard", help="ThingsBoard's database")

    r = sub.add_parser("run", help="sample this node for --count intervals")
    r.add_argument("--node", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--start", type=float, required=True, help="epoch seconds of sample 0")
    r.add_argument("--interval", type=float, required=True)
    r.add_argument("--count", type=int, required=True, help="intervals (count + 1 samples)")
    r.add_argument("--sim-stack", default="fleet")
    r.add_argument("--metrics-port", type=int, default=9100)
    database(r, required=False)
    r.add_argument(
        "--latency", action="store_true", help="read the arrival table (after db-prepare)"
    )
    r.set_defaults(func=run)

    prep = sub.add_parser("db-prepare", help="create the arrival table and trigger")
    database(prep, required=True)
    prep.add_argument("--app-role", default="thingsboard", help="owner of ts_kv")
    prep.add_argument("--key", default="seq", help="a key every inference message has once")
    prep.add_argument("--until", type=float, required=True, help="epoch s: stop recording")
    prep.set_defaults(func=db_prepare)

    clean = sub.add_parser("db-cleanup", help="drop the arrival table and trigger")
    database(clean, required=True)
    clean.add_argument("--app-role", default="thingsboard")
    clean.set_defaults(func=db_cleanup)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
