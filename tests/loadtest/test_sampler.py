"""The node sampler's pure parts: cgroup files, /proc, the simulators' /metrics and its SQL."""

from __future__ import annotations

from tests.conftest import load_source

sampler = load_source("roles/loadtest/files/loadtest_sampler.py")

VM_INIT = """\
12:memory:/docker/abc/init.scope
11:cpu:/docker/abc/init.scope
2:cpuacct:/docker/abc
1:name=systemd:/docker/abc/init.scope
0::/docker/abc/init.scope
"""


def test_cgroup_paths_of_a_systemd_container() -> None:
    paths = sampler.cgroup_paths(VM_INIT)
    assert paths == {
        "memory": "/docker/abc/init.scope",
        "cpu": "/docker/abc",
        "unified": "/docker/abc/init.scope",
    }
    assert sampler.container_root(paths["memory"]) == "/docker/abc"
    assert sampler.container_root("/init.scope") == "/"
    assert sampler.cgroup_paths("0::/\n") == {"unified": "/"}


def test_outermost_drops_nested_cgroups() -> None:
    paths = ["/docker/vm", "/docker/vm/inner", "/docker/other", "/docker/vm2"]
    assert sampler.outermost(paths) == ["/docker/other", "/docker/vm", "/docker/vm2"]


def test_proc_stat_and_meminfo() -> None:
    stat = "cpu  100 10 50 1000 20 5 5 10 0 0\ncpu0 1 2 3 4\n"
    assert sampler.proc_stat_busy_ns(stat, 100) == 180 * 10_000_000
    info = sampler.meminfo("MemTotal:       2048 kB\nMemAvailable:   1024 kB\nHugePages_Total: 0\n")
    assert info == {"MemTotal": 2048 * 1024, "MemAvailable": 1024 * 1024, "HugePages_Total": 0}


def test_prometheus_values() -> None:
    text = """\
# HELP tinyml_sim_sent_total QoS 1 inference messages handed to the broker
# TYPE tinyml_sim_sent_total counter
tinyml_sim_sent_total 1234.0
tinyml_sim_sent_created 1.7e9
tinyml_sim_connected 99.0
python_gc_objects_collected_total{generation="0"} 5.0
tinyml_sim_labelled{a="b"} 3.0
"""
    assert sampler.prometheus_values(text) == {"sent": 1234.0, "connected": 99.0}


def test_sql_quotes_names_and_bounds_the_trigger() -> None:
    sql = sampler.prepare_sql('tb"x', "se'q", 1_800_000_000_000)
    assert 'SET ROLE "tb""x";' in sql
    assert "'se''q'" in sql
    assert "IF arrived <= 1800000000000 THEN" in sql
    assert "AFTER INSERT ON ts_kv FOR EACH ROW" in sql
    assert "DROP SCHEMA IF EXISTS tinyml_loadtest CASCADE" in sampler.cleanup_sql("thingsboard")
    latency = sampler.latency_sql(1000, 10_000, 61_000)
    assert "(arrived_ms - 1000) / 10000 AS bucket" in latency
    assert "arrived_ms >= 1000 AND arrived_ms < 61000" in latency


def test_docker_time() -> None:
    assert sampler.docker_time("1970-01-01T00:00:10.250000000Z") == 10.25
    assert sampler.docker_time("1970-01-01T00:00:10.25+00:00") == 10.25
    assert sampler.docker_time("0001-01-01T00:00:00Z") == 0.0
    assert sampler.docker_time("") == 0.0
