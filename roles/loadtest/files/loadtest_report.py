#!/usr/bin/env python3
"""Turn a load-test run directory into report.md and PNG figures.

A run directory (written by playbooks/loadtest.yml) holds ``meta.json`` (parameters, the
controller machine, the inventory) and ``samples/<node>.jsonl`` (the JSON lines of each
node's sampler, roles/loadtest/files/loadtest_sampler.py). Run it again at any time:

    python roles/loadtest/files/loadtest_report.py <run directory>
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import math
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Record = dict[str, Any]
MiB = 1024 * 1024
FIGURES = ("throughput.png", "latency.png", "reconnects.png", "cpu.png", "memory.png")


# ---- loading ------------------------------------------------------------------------------


@dataclass
class Run:
    meta: dict[str, Any]
    records: list[Record]

    @property
    def interval_s(self) -> float:
        return float(self.meta["interval_s"])

    @property
    def count(self) -> int:
        return int(self.meta["count"])

    @property
    def start(self) -> float:
        return float(self.meta["start"])

    @property
    def duration_s(self) -> float:
        return self.interval_s * self.count

    def of(self, kind: str) -> list[Record]:
        return [r for r in self.records if r.get("kind") == kind]


def load(directory: Path) -> Run:
    meta = json.loads((directory / "meta.json").read_text())
    records: list[Record] = []
    for path in sorted((directory / "samples").glob("*.jsonl*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as f:
            text = f.read()
        for line in text.splitlines():
            if line.strip():
                records.append(json.loads(line))
    return Run(meta, records)


# ---- series -------------------------------------------------------------------------------


@dataclass
class Interval:
    """Sums over one sampling interval k (from sample k-1 to sample k), k = 1..count."""

    sent_per_s: float = 0.0
    acked_per_s: float = 0.0
    reconnects: float = 0.0
    dropped: float = 0.0
    reconnects_by_node: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    restarts: int = 0
    restarted_devices: float = 0.0
    restarted_by_node: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def counter_delta(before: float, after: float) -> float:
    """Increase of a counter; a smaller value means the process restarted from zero."""
    return after - before if after >= before else after


def series_by(records: Iterable[Record], *keys: str) -> dict[tuple[Any, ...], list[Record]]:
    """Records grouped by the given keys, each group sorted by sample index."""
    groups: dict[tuple[Any, ...], list[Record]] = defaultdict(list)
    for r in records:
        groups[tuple(r.get(k) for k in keys)].append(r)
    for group in groups.values():
        group.sort(key=lambda r: (r["k"], r["t"]))
    return dict(groups)


def pairs(group: Sequence[Record]) -> Iterable[tuple[Record, Record]]:
    return itertools.pairwise(group)


def sim_intervals(run: Run) -> dict[int, Interval]:
    """Simulator counters per interval. A simulator container that started during the run
    (a restart: its devices connect afresh, which its `reconnects` does not count) counts
    all of its counters in the interval it first answered in, and as a restart there."""
    intervals = {k: Interval() for k in range(1, run.count + 1)}
    sims = [r for r in run.of("sim") if "metrics" in r]
    for (node, _), group in series_by(sims, "node", "container").items():
        first = group[0]
        steps = list(pairs(group))
        if first["k"] in intervals and float(first.get("started", 0)) >= run.start:
            zero = {"k": first["k"] - 1, "t": run.start + (first["k"] - 1) * run.interval_s}
            steps.insert(0, (zero | {"metrics": {}}, first))
            intervals[first["k"]].restarts += 1
            intervals[first["k"]].restarted_devices += float(first["metrics"].get("devices", 0))
            intervals[first["k"]].restarted_by_node[node] += 1
        for a, b in steps:
            dt = b["t"] - a["t"]
            if dt <= 0 or b["k"] not in intervals:
                continue
            slot = intervals[b["k"]]
            ma, mb = a["metrics"], b["metrics"]
            slot.sent_per_s += counter_delta(ma.get("sent", 0), mb.get("sent", 0)) / dt
            slot.acked_per_s += counter_delta(ma.get("acked", 0), mb.get("acked", 0)) / dt
            reconnects = counter_delta(ma.get("reconnects", 0), mb.get("reconnects", 0))
            slot.reconnects += reconnects
            slot.reconnects_by_node[node] += reconnects
            slot.dropped += counter_delta(ma.get("dropped", 0), mb.get("dropped", 0))
    return intervals


def gauge_by_node(run: Run, name: str) -> dict[str, dict[int, float]]:
    """Sum of a simulator gauge (devices, connected) per node and sample index."""
    out: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for r in run.of("sim"):
        if "metrics" in r:
            out[r["node"]][r["k"]] += float(r["metrics"].get(name, 0))
    return {node: dict(values) for node, values in out.items()}


def cpu_percent(group: Sequence[Record]) -> dict[int, float]:
    """% of one core per interval from cumulative CPU nanoseconds (as docker stats counts)."""
    out: dict[int, float] = {}
    for a, b in pairs(group):
        dt = b["t"] - a["t"]
        used = b["cpu_ns"] - a["cpu_ns"]
        if dt > 0 and used >= 0:
            out[b["k"]] = used / (dt * 1e9) * 100
    return out


def node_cpu_ns(a: Record, b: Record) -> float | None:
    """CPU ns a node used between two samples. Per cgroup when the sampler lists them: a
    cgroup counts its increase, or all of its time if its container started in between; a
    container that stopped in between loses only its last partial interval."""
    before, after = a.get("cpu_ns_by_cgroup"), b.get("cpu_ns_by_cgroup")
    if before is None or after is None:
        used = b["cpu_ns"] - a["cpu_ns"]
        return used if used >= 0 else None
    total = 0.0
    for path, (ns, started) in after.items():
        if path in before and ns >= before[path][0]:
            total += ns - before[path][0]
        elif started >= a["t"]:
            total += ns
    return total


def node_cpu(run: Run) -> dict[str, dict[int, float]]:
    """% of one core per node and interval."""
    out: dict[str, dict[int, float]] = {}
    for (node,), group in series_by(run.of("node"), "node").items():
        out[node] = {}
        for a, b in pairs(group):
            dt, used = b["t"] - a["t"], node_cpu_ns(a, b)
            if dt > 0 and used is not None:
                out[node][b["k"]] = used / (dt * 1e9) * 100
    return out


def node_memory(run: Run) -> dict[str, dict[int, float]]:
    return {
        node: {r["k"]: r["mem_bytes"] / MiB for r in g}
        for (node,), g in series_by(run.of("node"), "node").items()
    }


@dataclass
class ServiceLoad:
    node: str
    service: str
    cpu_mean: float
    cpu_max: float
    mem_mean_mib: float
    mem_max_mib: float


def container_loads(run: Run) -> list[ServiceLoad]:
    """Per node and service: CPU % of one core and memory, over the containers it ran."""
    cpu: dict[tuple[str, str], dict[int, float]] = defaultdict(lambda: defaultdict(float))
    mem: dict[tuple[str, str], dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for (node, name), group in series_by(run.of("container"), "node", "name").items():
        service = str(group[0].get("service") or name)
        for k, value in cpu_percent(group).items():
            cpu[(node, service)][k] += value
        for r in group:
            mem[(node, service)][r["k"]] += r["mem_bytes"] / MiB
    loads = []
    for key in sorted(mem):
        cpus = list(cpu[key].values()) or [0.0]
        mems = list(mem[key].values())
        loads.append(
            ServiceLoad(
                key[0], key[1], statistics.fmean(cpus), max(cpus), statistics.fmean(mems), max(mems)
            )
        )
    return loads


def db_rows_per_s(run: Run) -> dict[int, float]:
    out: dict[int, float] = {}
    for group in series_by(run.of("db"), "node").values():
        for a, b in pairs(group):
            dt = b["t"] - a["t"]
            if dt > 0:
                out[b["k"]] = counter_delta(a["ts_kv_inserted"], b["ts_kv_inserted"]) / dt
    return out


def latency_by_interval(run: Run) -> dict[int, Record]:
    """Latency records by interval k (bucket b = arrivals in interval k = b + 1)."""
    return {int(r["bucket"]) + 1: r for r in run.of("latency")}


def latency_total(run: Run) -> Record | None:
    totals = run.of("latency_total")
    return totals[0] if totals and totals[0].get("count") else None


# ---- summary ------------------------------------------------------------------------------


@dataclass
class NodeSummary:
    node: str
    groups: list[str]
    devices_inventory: int
    devices_seen: int
    replicas: int
    reconnects: float
    restarts: int
    cpu_mean: float
    cpu_max: float
    mem_mean_mib: float
    mem_max_mib: float
    cpus: int
    mem_total_mib: float
    source: str


@dataclass
class Summary:
    devices_inventory: int
    devices_seen: int
    connected_min: int
    duration_min: float
    interval_s: float
    sent_per_s_mean: float
    sent_per_s_max: float
    acked_per_s_mean: float
    acked_total: float
    db_per_s_mean: float | None
    db_total: int | None
    db_devices: int | None
    rows_per_s_mean: float | None
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    latency_max_ms: float | None
    latency_min_ms: float | None
    worst_interval_p99_ms: float | None
    reconnects: float
    restarts: int
    restarted_devices: float
    dropped: float
    errors: int
    unanswered: int
    nodes: list[NodeSummary]


def mean(values: Iterable[float]) -> float:
    data = list(values)
    return statistics.fmean(data) if data else 0.0


def inventory_devices(meta: dict[str, Any], node: str) -> int:
    host = meta.get("inventory", {}).get("hosts", {}).get(node, {})
    return int(sum((host.get("devices") or {}).values()))


def summarize(run: Run) -> Summary:
    intervals = sim_intervals(run)
    devices = gauge_by_node(run, "devices")
    connected = gauge_by_node(run, "connected")
    cpu, memory = node_cpu(run), node_memory(run)
    hosts = run.meta.get("inventory", {}).get("hosts", {})
    node_names = sorted(set(hosts) | set(cpu) | set(devices))
    node_records = {r["node"]: r for r in run.of("node")}
    replicas: dict[str, set[str]] = defaultdict(set)
    for r in run.of("sim"):
        replicas[r["node"]].add(r["container"])

    nodes = []
    for node in node_names:
        seen = devices.get(node, {})
        info = node_records.get(node, {})
        nodes.append(
            NodeSummary(
                node=node,
                groups=list(hosts.get(node, {}).get("groups", [])),
                devices_inventory=inventory_devices(run.meta, node),
                devices_seen=int(max(seen.values(), default=0)),
                replicas=len(replicas.get(node, ())),
                reconnects=sum(i.reconnects_by_node.get(node, 0.0) for i in intervals.values()),
                restarts=sum(i.restarted_by_node.get(node, 0) for i in intervals.values()),
                cpu_mean=mean(cpu.get(node, {}).values()),
                cpu_max=max(cpu.get(node, {}).values(), default=0.0),
                mem_mean_mib=mean(memory.get(node, {}).values()),
                mem_max_mib=max(memory.get(node, {}).values(), default=0.0),
                cpus=int(info.get("cpus", 0)),
                mem_total_mib=float(info.get("mem_total_bytes", 0)) / MiB,
                source=str(info.get("source", "")),
            )
        )

    total_connected: dict[int, float] = defaultdict(float)
    for values in connected.values():
        for k, v in values.items():
            total_connected[k] += v
    sent = [i.sent_per_s for i in intervals.values()]
    acked = [i.acked_per_s for i in intervals.values()]
    total = latency_total(run)
    by_interval = latency_by_interval(run)
    rows = db_rows_per_s(run)
    return Summary(
        devices_inventory=sum(n.devices_inventory for n in nodes),
        devices_seen=sum(n.devices_seen for n in nodes),
        connected_min=int(min(total_connected.values(), default=0)),
        duration_min=run.duration_s / 60,
        interval_s=run.interval_s,
        sent_per_s_mean=mean(sent),
        sent_per_s_max=max(sent, default=0.0),
        acked_per_s_mean=mean(acked),
        acked_total=sum(a * run.interval_s for a in acked),
        db_per_s_mean=total["count"] / run.duration_s if total else None,
        db_total=int(total["count"]) if total else None,
        db_devices=int(total["devices"]) if total and "devices" in total else None,
        rows_per_s_mean=mean(rows.values()) if rows else None,
        latency_p50_ms=float(total["p50_ms"]) if total else None,
        latency_p99_ms=float(total["p99_ms"]) if total else None,
        latency_max_ms=float(total["max_ms"]) if total else None,
        latency_min_ms=float(total["min_ms"]) if total else None,
        worst_interval_p99_ms=max((float(r["p99_ms"]) for r in by_interval.values()), default=None),
        reconnects=sum(i.reconnects for i in intervals.values()),
        restarts=sum(i.restarts for i in intervals.values()),
        restarted_devices=sum(i.restarted_devices for i in intervals.values()),
        dropped=sum(i.dropped for i in intervals.values()),
        errors=len(run.of("error")),
        unanswered=sum(1 for r in run.of("sim") if "error" in r),
        nodes=nodes,
    )


# ---- figures ------------------------------------------------------------------------------


def minutes(run: Run, ks: Iterable[int]) -> list[float]:
    """Middle of interval k, in minutes from the start of the run."""
    return [(k - 0.5) * run.interval_s / 60 for k in ks]


class Figures:
    """The report's PNG figures, one method each, drawn with matplotlib's Agg backend."""

    def __init__(self, run: Run, out: Path) -> None:
        import matplotlib  # noqa: PLC0415 (only when figures are drawn)

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415

        plt.rcParams.update({"figure.dpi": 100, "font.size": 9, "axes.grid": True})
        self.plt = plt
        self.run = run
        self.out = out
        self.ks = list(range(1, run.count + 1))
        self.x = minutes(run, self.ks)
        self.intervals = sim_intervals(run)
        self.latency = latency_by_interval(run)

    def draw(self) -> list[str]:
        self.throughput()
        self.latency_plot()
        self.reconnects()
        self.cpu()
        self.memory()
        return list(FIGURES)

    def at_samples(self, ks: Iterable[int]) -> list[float]:
        return [k * self.run.interval_s / 60 for k in ks]

    def finish(self, fig: Any, axes: Sequence[Any], name: str) -> None:
        axes[-1].set_xlabel("minutes since start")
        for ax in axes:
            ax.set_xlim(0, self.run.duration_s / 60)
            ax.set_ylim(bottom=0)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="best", fontsize=8)
        fig.suptitle(f"run {self.run.meta.get('run_id', '')}", fontsize=9)
        fig.tight_layout()
        fig.savefig(self.out / name)
        self.plt.close(fig)

    def throughput(self) -> None:
        fig, (top, bottom) = self.plt.subplots(2, 1, figsize=(8, 5.5), sharex=True)
        slots = [self.intervals[k] for k in self.ks]
        top.plot(self.x, [i.sent_per_s for i in slots], label="sent by the devices")
        top.plot(self.x, [i.acked_per_s for i in slots], label="acknowledged by EMQX", ls="--")
        if self.latency:
            db = [self.latency[k]["count"] if k in self.latency else 0 for k in self.ks]
            top.plot(
                self.x, [n / self.run.interval_s for n in db], label="arrived in ts_kv", ls=":"
            )
        top.set_ylabel("inference msgs/s")
        rows = db_rows_per_s(self.run)
        rk = sorted(rows)
        bottom.plot(minutes(self.run, rk), [rows[k] for k in rk], color="tab:purple")
        bottom.set_ylabel("ts_kv rows inserted/s")
        self.finish(fig, (top, bottom), FIGURES[0])

    def latency_plot(self) -> None:
        fig, ax = self.plt.subplots(figsize=(8, 3.5))
        lk = sorted(k for k in self.latency if 1 <= k <= self.run.count)
        worst = max((float(self.latency[k]["p99_ms"]) for k in lk), default=0.0)
        unit, scale = ("min", 60_000.0) if worst >= 600_000 else ("s", 1000.0)
        if worst < 10_000:
            unit, scale = "ms", 1.0
        if lk:
            for q in ("p50", "p99"):
                values = [float(self.latency[k][f"{q}_ms"]) / scale for k in lk]
                ax.plot(minutes(self.run, lk), values, label=q)
        else:
            ax.text(0.5, 0.5, "not measured", ha="center", transform=ax.transAxes)
        ax.set_ylabel(f"device → database latency ({unit})")
        self.finish(fig, (ax,), FIGURES[1])

    def reconnects(self) -> None:
        fig, (top, middle, bottom) = self.plt.subplots(3, 1, figsize=(8, 6.5), sharex=True)
        nodes = sorted({r["node"] for r in self.run.of("sim")})
        for node in nodes:
            counts = [self.intervals[k].reconnects_by_node.get(node, 0) for k in self.ks]
            top.step(self.x, counts, where="mid", label=node)
        top.set_ylabel("device reconnects")
        width = self.run.interval_s / 60 / (len(nodes) + 1)
        for i, node in enumerate(nodes):
            restarts = [self.intervals[k].restarted_by_node.get(node, 0) for k in self.ks]
            offset = (i - (len(nodes) - 1) / 2) * width
            middle.bar([x + offset for x in self.x], restarts, width=width, label=node)
        middle.set_ylabel("simulator restarts")
        for node, values in sorted(gauge_by_node(self.run, "connected").items()):
            gk = sorted(values)
            bottom.plot(self.at_samples(gk), [values[k] for k in gk], label=node)
        bottom.set_ylabel("connected devices")
        self.finish(fig, (top, middle, bottom), FIGURES[2])

    def cpu(self) -> None:
        fig, ax = self.plt.subplots(figsize=(8, 3.5))
        for node, values in sorted(node_cpu(self.run).items()):
            ck = sorted(values)
            ax.plot(minutes(self.run, ck), [values[k] for k in ck], label=node)
        ax.set_ylabel("CPU (% of one core)")
        self.finish(fig, (ax,), FIGURES[3])

    def memory(self) -> None:
        fig, ax = self.plt.subplots(figsize=(8, 3.5))
        for node, values in sorted(node_memory(self.run).items()):
            mk = sorted(values)
            ax.plot(self.at_samples(mk), [values[k] for k in mk], label=node)
        ax.set_ylabel("memory (MiB)")
        self.finish(fig, (ax,), FIGURES[4])


# ---- markdown -----------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 1, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def span(ms: float | None) -> str:
    """A latency in the unit that reads best: ms below 10 s, s below 10 min, else min."""
    if ms is None:
        return "n/a"
    if abs(ms) < 10_000:
        return f"{ms:,.0f} ms"
    if abs(ms) < 600_000:
        return f"{ms / 1000:,.1f} s"
    return f"{ms / 60_000:,.1f} min"


def observations(run: Run, s: Summary) -> list[str]:
    """What the figures say, in sentences, where a threshold is crossed."""
    notes = []
    if s.db_total is not None and s.acked_total:
        share = s.db_total / s.acked_total
        if share < 0.9:
            notes.append(
                f"The database received {share:.0%} of the inference messages EMQX acknowledged: "
                "the path from EMQX through the gateway and ThingsBoard to the database did not "
                f"keep up, and its backlog grew by about {s.acked_total - s.db_total:,.0f} "
                "messages during the run."
            )
    latency = latency_by_interval(run)
    if len(latency) >= 2:
        first, last = latency[min(latency)], latency[max(latency)]
        notes.append(
            f"Latency p50 went from {span(float(first['p50_ms']))} in the first interval to "
            f"{span(float(last['p50_ms']))} in the last."
        )
    if s.restarts:
        notes.append(
            f"{s.restarts} simulator containers restarted during the run; their devices were "
            f"offline meanwhile (fewest connected at one sample: {s.connected_min} of "
            f"{s.devices_seen})."
        )
    if s.dropped:
        notes.append(f"Devices dropped {s.dropped:,.0f} messages from full offline buffers.")
    return [f"- {n}" for n in notes]


def loadavg(text: str | None) -> str:
    """The first three fields of /proc/loadavg."""
    return " ".join(text.split()[:3]) if text else "n/a"


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def render(run: Run, s: Summary) -> str:
    meta = run.meta
    machine = meta.get("controller", {})
    inventory = meta.get("inventory", {})
    lines = [
        f"# Load test {meta.get('run_id', '')}",
        "",
        f"{s.devices_seen} simulated devices on {len(s.nodes)} nodes for "
        f"{fmt(s.duration_min, 1)} minutes (a sample every {fmt(s.interval_s, 0)} s), inventory "
        f"`{inventory.get('name', '?')}`, started {meta.get('started_utc', '?')}. "
        "Written by `playbooks/loadtest.yml`; regenerate with "
        "`python roles/loadtest/files/loadtest_report.py <this directory>`.",
        "",
    ]
    if meta.get("notes"):
        lines += [f"> {meta['notes']}", ""]
    lines += ["## Results", ""]
    lines += table(
        ("measure", "value"),
        [
            (
                "devices: inventory / simulators report (most at one sample) / fewest connected",
                f"{s.devices_inventory} / {s.devices_seen} / {s.connected_min}",
            ),
            ("duration", f"{fmt(s.duration_min, 1)} min"),
            (
                "inference msgs/s sent by the devices (mean / max interval)",
                f"{fmt(s.sent_per_s_mean)} / {fmt(s.sent_per_s_max)}",
            ),
            ("inference msgs/s acknowledged by EMQX (mean)", fmt(s.acked_per_s_mean)),
            ("inference msgs/s arrived in ts_kv (mean)", fmt(s.db_per_s_mean)),
            (
                "arrived in ts_kv / acknowledged by EMQX",
                fmt(100 * s.db_total / s.acked_total, 1, " %")
                if s.db_total is not None and s.acked_total
                else "n/a",
            ),
            ("devices seen in ts_kv", str(s.db_devices) if s.db_devices is not None else "n/a"),
            ("ts_kv rows inserted/s (all keys, mean)", fmt(s.rows_per_s_mean)),
            (
                "device → database latency p50 / p99",
                f"{span(s.latency_p50_ms)} / {span(s.latency_p99_ms)}",
            ),
            (
                "latency min / max; worst interval p99",
                f"{span(s.latency_min_ms)} / {span(s.latency_max_ms)}; "
                f"{span(s.worst_interval_p99_ms)}",
            ),
            ("device reconnects during the run (in a running simulator)", fmt(s.reconnects, 0)),
            (
                "simulator restarts during the run (their devices connect afresh)",
                f"{s.restarts} ({fmt(s.restarted_devices, 0)} devices)",
            ),
            ("messages dropped from full device buffers", fmt(s.dropped, 0)),
            (
                "simulator samples not answered (a container starting or stopping)",
                str(s.unanswered),
            ),
            ("sampling errors", str(s.errors)),
        ],
    )
    found = observations(run, s)
    if found:
        lines += ["", *found]
    lines += ["", "### Per node", ""]
    lines += table(
        (
            "node",
            "groups",
            "devices (inventory / simulators)",
            "simulator containers seen",
            "reconnects",
            "simulator restarts",
            "CPU % of a core (mean / max)",
            "memory MiB (mean / max)",
        ),
        [
            (
                n.node,
                ", ".join(n.groups),
                f"{n.devices_inventory} / {n.devices_seen}",
                str(n.replicas),
                fmt(n.reconnects, 0),
                str(n.restarts),
                f"{fmt(n.cpu_mean)} / {fmt(n.cpu_max)}",
                f"{fmt(n.mem_mean_mib, 0)} / {fmt(n.mem_max_mib, 0)}",
            )
            for n in s.nodes
        ],
    )
    lines += [
        "",
        "CPU is the node's CPU time per second of wall clock (100 % = one core, the way "
        "`docker stats` counts); memory excludes inactive page cache, as `docker stats` does. "
        f"Source: {', '.join(sorted({n.source for n in s.nodes if n.source})) or 'n/a'} "
        "(`proc`: the node's /proc/stat and /proc/meminfo; `cgroup-*`: the node is a container, "
        "counted as its own cgroup plus the cgroups of the containers its engine runs).",
        "",
        "### Figures",
        "",
        "![inference messages per second](throughput.png)",
        "",
        "![device to database latency](latency.png)",
        "",
        "![reconnects and connected devices](reconnects.png)",
        "",
        "![CPU per node](cpu.png)",
        "",
        "![memory per node](memory.png)",
        "",
        "### Per service",
        "",
    ]
    lines += table(
        ("node", "service", "CPU % of a core (mean / max)", "memory MiB (mean / max)"),
        [
            (
                c.node,
                f"`{c.service}`",
                f"{fmt(c.cpu_mean)} / {fmt(c.cpu_max)}",
                f"{fmt(c.mem_mean_mib, 0)} / {fmt(c.mem_max_mib, 0)}",
            )
            for c in container_loads(run)
        ],
    )
    lines += ["", "## Machine", ""]
    lines += table(
        ("what", "value"),
        [
            ("controller", str(machine.get("hostname", "?"))),
            ("CPU", str(machine.get("cpu_model", "?"))),
            ("cores (logical)", str(machine.get("cores", "?"))),
            ("memory", f"{fmt(float(machine.get('mem_mb', 0)) / 1024, 1)} GiB"),
            ("kernel", str(machine.get("kernel", "?"))),
            ("OS", str(machine.get("os", "?"))),
            ("Ansible / Python", f"{machine.get('ansible', '?')} / {machine.get('python', '?')}"),
            (
                "load average (1, 5, 15 min) at start / end",
                f"{loadavg(machine.get('loadavg_start'))} / {loadavg(machine.get('loadavg_end'))}",
            ),
        ],
    )
    node_rows = [(n.node, str(n.cpus), fmt(n.mem_total_mib / 1024, 1)) for n in s.nodes if n.cpus]
    if node_rows:
        lines += ["", "What each node sees:", ""]
        lines += table(("node", "CPUs", "memory GiB"), node_rows)
    lines += ["", "## Inventory", ""]
    lines += table(
        ("host", "groups", "devices per class"),
        [
            (
                host,
                ", ".join(info.get("groups", [])),
                ", ".join(f"{c}: {n}" for c, n in sorted((info.get("devices") or {}).items()))
                or "none",
            )
            for host, info in sorted(inventory.get("hosts", {}).items())
        ],
    )
    lines += ["", "## How it was measured", ""]
    lines += method(meta)
    return "\n".join(lines) + "\n"


def method(meta: dict[str, Any]) -> list[str]:
    key = meta.get("db_key", "seq")
    return [
        "- Every node ran `roles/loadtest/files/loadtest_sampler.py`; all took their samples at "
        "the same instants (start + k * interval). Rates are counter increases between two "
        "samples divided by the time between them; a counter that goes down (a simulator "
        "restarted) counts from zero.",
        "- Messages: the simulators' own counters (`/metrics` of every replica: `sent`, "
        "`acked`, `reconnects`, `dropped`, `connected`). `sent` counts QoS 1 inference "
        "messages handed to the broker, `acked` those EMQX acknowledged.",
        f"- Database: for the run, an AFTER INSERT trigger on `ts_kv` for key `{key}` (one row "
        "per inference message) copied each row's `ts` and the database clock at insert "
        "(`clock_timestamp()`) into schema `tinyml_loadtest`, dropped at the end. Latency = "
        "insert time - `ts`, where `ts` is the device's timestamp of the sensor window the "
        "inference ran on (the gateway passes the payload's `ts` through). It therefore "
        "includes the inference, any wait on the device (offline buffer), MQTT/TLS, EMQX, the "
        "gateway, ThingsBoard and its write batching, and any clock offset between the "
        "device and the database (one kernel clock in the lab; NTP on a site). Percentiles "
        "are PostgreSQL's `percentile_cont` over the messages that arrived in each interval, "
        "and over the whole run. `ts_kv rows/s` is `pg_stat_user_tables.n_tup_ins` of "
        "`ts_kv` and its chunks (every key of every message).",
        "- Nodes: CPU time and memory from cgroups or /proc (see the note under Per node).",
        "",
        "What it does not prove: in the lab, EMQX, ThingsBoard and TimescaleDB are stand-ins "
        "(see the stand-ins' READMEs) and all nodes share one machine with whatever else ran "
        "on it, so these figures describe this lab, not a site.",
    ]


# ---- entry point --------------------------------------------------------------------------


def build(directory: Path, *, figures: bool = True) -> Summary:
    run = load(directory)
    summary = summarize(run)
    if figures:
        Figures(run, directory).draw()
    (directory / "report.md").write_text(render(run, summary))
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("directory", type=Path, help="run directory (meta.json, samples/)")
    p.add_argument("--no-figures", action="store_true", help="write report.md only")
    args = p.parse_args(argv)
    try:
        s = build(args.directory, figures=not args.no_figures)
    except ImportError as exc:
        print(
            f"{exc}: the figures need matplotlib in this Python (pip install -r "
            "requirements-dev.txt), or run with --no-figures",
            file=sys.stderr,
        )
        return 2
    print(
        f"{args.directory / 'report.md'}: {s.devices_seen} devices, "
        f"{fmt(s.sent_per_s_mean)} msgs/s sent, {fmt(s.db_per_s_mean)} msgs/s into ts_kv, "
        f"latency p50 {span(s.latency_p50_ms)} p99 {span(s.latency_p99_ms)}, "
        f"{fmt(s.reconnects, 0)} reconnects, {s.restarts} simulator restarts"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
