"""roles/loadtest/files/loadtest_report.py on synthetic samples: rates from counters (with a
simulator restart), CPU from cumulative nanoseconds, latency from the database's buckets,
the Markdown report and its figures."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import load_source

INTERVAL = 10
COUNT = 6
START = 1_800_000_000.0


report = load_source("roles/loadtest/files/loadtest_report.py")


def meta() -> dict[str, Any]:
    return {
        "run_id": "20270115T0800Z",
        "start": START,
        "started_utc": "2027-01-15 08:00:00 UTC",
        "interval_s": INTERVAL,
        "count": COUNT,
        "duration_s": INTERVAL * COUNT,
        "notes": "synthetic",
        "db_key": "seq",
        "controller": {
            "hostname": "ctl",
            "cpu_model": "Test CPU @ 2.0GHz",
            "cores": 2,
            "mem_mb": 24000,
            "kernel": "6.1.0",
            "os": "Debian 12",
            "python": "3.11.2",
            "ansible": "2.19.14",
            "loadavg_start": "1.50 1.20 0.90 2/300 12345",
        },
        "inventory": {
            "name": "lab",
            "hosts": {
                "vm1": {"groups": ["simulators", "timescaledb"], "devices": {"a": 60, "b": 40}},
                "vm2": {"groups": ["simulators"], "devices": {"a": 100}},
            },
        },
    }


def samples() -> dict[str, list[dict[str, Any]]]:
    """vm1: one replica at 50 msgs/s, restarting (counters from zero) at k = 4; the database
    with 400 ts_kv rows/s. vm2: two replicas at 25 msgs/s each, 2 reconnects per interval."""
    out: dict[str, list[dict[str, Any]]] = {"vm1": [], "vm2": []}
    for k in range(COUNT + 1):
        t = START + k * INTERVAL
        for node, records in out.items():
            stamp = {"node": node, "k": k, "t": t}
            cpu_ns = k * INTERVAL * 1e9 * (0.5 if node == "vm1" else 0.25)
            records.append({**stamp, "kind": "node", "cpu_ns": cpu_ns, "mem_bytes": 512 << 20})
            records.append(
                {**stamp, "kind": "container", "name": f"{node}-sim", "service": "fleet_sim"}
                | {"cpu_ns": cpu_ns / 2, "mem_bytes": 64 << 20}
            )
        sent = 50 * INTERVAL * (k if k < 4 else k - 4)
        out["vm1"].append(
            {"node": "vm1", "k": k, "t": t, "kind": "sim", "container": "aaa"}
            | {"metrics": {"sent": sent, "acked": sent, "devices": 100, "connected": 100}}
        )
        for replica in ("b1", "b2"):
            out["vm2"].append(
                {"node": "vm2", "k": k, "t": t, "kind": "sim", "container": replica}
                | {
                    "metrics": {
                        "sent": 25 * INTERVAL * k,
                        "acked": 25 * INTERVAL * k,
                        "reconnects": 2 * k,
                        "devices": 50,
                        "connected": 49 if k == 3 else 50,
                    }
                }
            )
        out["vm1"].append(
            {"node": "vm1", "k": k, "t": t, "kind": "db", "ts_kv_inserted": 400 * INTERVAL * k}
        )
    for bucket in range(COUNT):
        out["vm1"].append(
            {"node": "vm1", "kind": "latency", "bucket": bucket, "count": 1000}
            | {"p50_ms": 100 + bucket, "p99_ms": 300 + bucket, "max_ms": 900, "min_ms": 5}
        )
    out["vm1"].append(
        {"node": "vm1", "kind": "latency_total", "count": 6000, "devices": 200}
        | {"p50_ms": 102.5, "p99_ms": 305.0, "max_ms": 900, "min_ms": 5}
    )
    return out


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    (tmp_path / "meta.json").write_text(json.dumps(meta()))
    (tmp_path / "samples").mkdir()
    for node, records in samples().items():
        lines = "".join(json.dumps(r) + "\n" for r in records)
        (tmp_path / "samples" / f"{node}.jsonl").write_text(lines)
    return tmp_path


def test_counter_delta_treats_a_decrease_as_a_restart() -> None:
    assert report.counter_delta(100, 150) == 50
    assert report.counter_delta(150, 20) == 20


def test_rates_per_interval_survive_a_simulator_restart(run_dir: Path) -> None:
    run = report.load(run_dir)
    intervals = report.sim_intervals(run)
    assert sorted(intervals) == list(range(1, COUNT + 1))
    # vm1 50/s + vm2 2 x 25/s; at k = 4 vm1's counter restarted from zero (0 since then).
    assert intervals[1].sent_per_s == pytest.approx(100)
    assert intervals[4].sent_per_s == pytest.approx(50)
    assert intervals[5].sent_per_s == pytest.approx(100)
    assert intervals[2].reconnects == 4
    assert intervals[2].reconnects_by_node["vm2"] == 4


def test_cpu_percent_of_one_core_from_cumulative_nanoseconds(run_dir: Path) -> None:
    run = report.load(run_dir)
    cpu = report.node_cpu(run)
    assert cpu["vm1"][3] == pytest.approx(50)
    assert cpu["vm2"][3] == pytest.approx(25)
    assert report.node_memory(run)["vm1"][0] == pytest.approx(512)


def test_summary(run_dir: Path) -> None:
    s = report.summarize(report.load(run_dir))
    assert s.devices_inventory == 200
    assert s.devices_seen == 200
    assert s.connected_min == 198
    assert s.duration_min == pytest.approx(1.0)
    assert s.db_total == 6000
    assert s.db_per_s_mean == pytest.approx(100)
    assert s.rows_per_s_mean == pytest.approx(400)
    assert s.latency_p50_ms == pytest.approx(102.5)
    assert s.latency_p99_ms == pytest.approx(305)
    assert s.worst_interval_p99_ms == pytest.approx(305)
    assert s.reconnects == 2 * 2 * COUNT
    assert s.errors == 0
    by_node = {n.node: n for n in s.nodes}
    assert by_node["vm2"].replicas == 2
    assert by_node["vm1"].cpu_mean == pytest.approx(50)
    assert by_node["vm1"].groups == ["simulators", "timescaledb"]


def test_latency_buckets_map_to_the_interval_they_arrived_in(run_dir: Path) -> None:
    by_interval = report.latency_by_interval(report.load(run_dir))
    assert sorted(by_interval) == list(range(1, COUNT + 1))
    assert by_interval[1]["p50_ms"] == 100


def test_container_loads_per_service(run_dir: Path) -> None:
    loads = report.container_loads(report.load(run_dir))
    assert [(c.node, c.service) for c in loads] == [("vm1", "fleet_sim"), ("vm2", "fleet_sim")]
    assert loads[0].cpu_mean == pytest.approx(25)
    assert loads[0].mem_max_mib == pytest.approx(64)


def test_report_and_figures(run_dir: Path) -> None:
    assert report.main([str(run_dir)]) == 0
    text = (run_dir / "report.md").read_text()
    assert text.startswith("# Load test 20270115T0800Z")
    assert "Test CPU @ 2.0GHz" in text
    assert "| vm1 | simulators, timescaledb | a: 60, b: 40 |" in text
    assert "102 ms / 305 ms" in text
    assert "Latency p50 went from 100 ms in the first interval to 105 ms in the last." in text
    assert "| 1.50 1.20 0.90 / n/a |" in text
    for name in report.FIGURES:
        assert f"]({name})" in text
        assert (run_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_run_without_database_or_simulators_still_reports(tmp_path: Path) -> None:
    doc = meta()
    (tmp_path / "meta.json").write_text(json.dumps(doc))
    (tmp_path / "samples").mkdir()
    nodes = [
        {"node": "vm1", "k": k, "t": START + k * INTERVAL, "kind": "node"}
        | {"cpu_ns": k * 1e9, "mem_bytes": 1 << 30}
        for k in range(COUNT + 1)
    ]
    nodes.append({"node": "vm1", "k": 2, "t": START + 20, "kind": "error", "error": "x"})
    (tmp_path / "samples" / "vm1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in nodes))
    s = report.build(tmp_path, figures=False)
    assert s.latency_p99_ms is None
    assert s.errors == 1
    text = (tmp_path / "report.md").read_text()
    assert "| n/a / n/a |" in text


def test_node_cpu_counts_containers_that_come_and_go() -> None:
    a = {"t": 100.0, "cpu_ns": 0, "cpu_ns_by_cgroup": {"/vm": [1000, 0], "/old": [500, 10.0]}}
    b = {
        "t": 110.0,
        "cpu_ns": 0,
        "cpu_ns_by_cgroup": {
            "/vm": [1600, 0],  # +600
            "/new": [300, 105.0],  # started in between: all of it
            "/late": [9_999_999, 50.0],  # started before but not seen: left out
        },
    }
    assert report.node_cpu_ns(a, b) == 900
    assert report.node_cpu_ns({"cpu_ns": 10}, {"cpu_ns": 5}) is None
    assert report.node_cpu_ns({"cpu_ns": 10}, {"cpu_ns": 25}) == 15


def test_a_simulator_restart_counts_its_counters_and_its_devices() -> None:
    def sim(k: int, container: str, sent: float, started: float) -> dict[str, Any]:
        return {"kind": "sim", "node": "vm1", "k": k, "t": START + k * INTERVAL} | {
            "container": container,
            "started": started,
            "metrics": {"sent": sent, "acked": sent, "devices": 50},
        }

    records = [sim(k, "old", 100.0 * k, START - 600) for k in range(3)]
    records += [sim(k, "new", 50.0 * (k - 2), START + 25) for k in range(3, COUNT + 1)]
    intervals = report.sim_intervals(report.Run(meta(), records))
    assert intervals[2].sent_per_s == pytest.approx(10)
    assert intervals[3].restarts == 1
    assert intervals[3].restarted_devices == 50
    assert intervals[3].restarted_by_node["vm1"] == 1
    assert intervals[3].sent_per_s == pytest.approx(5)  # 50 since it started, over the interval
    assert intervals[4].sent_per_s == pytest.approx(5)
    assert sum(i.restarts for i in intervals.values()) == 1


def test_samples_may_be_gzipped(run_dir: Path) -> None:
    for path in (run_dir / "samples").glob("*.jsonl"):
        with gzip.open(path.with_name(path.name + ".gz"), "wt") as f:
            f.write(path.read_text())
        path.unlink()
    assert report.summarize(report.load(run_dir)).db_total == 6000


def test_span_picks_a_readable_unit() -> None:
    assert report.span(None) == "n/a"
    assert report.span(250.4) == "250 ms"
    assert report.span(12_345) == "12.3 s"
    assert report.span(2_666_969) == "44.4 min"
