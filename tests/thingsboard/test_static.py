"""tb-node's stack against the vendor's references: Docker 20.10's stack schema, and the
environment variables of thingsboard.yml 4.2.2.3 and of the image's start script."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.render import render, repo_path, stack_schema_errors

# Read by msa/tb-node/docker/start-tb-node.sh, not by thingsboard.yml (specs/SOURCES.md).
START_SCRIPT_VARIABLES = {"JAVA_OPTS", "INSTALL_TB", "LOAD_DEMO", "UPGRADE_TB", "FROM_VERSION"}
# Exported by the entrypoint wrapper from swarm secrets.
SECRET_VARIABLES = {"SPRING_DATASOURCE_PASSWORD", "JWT_TOKEN_SIGNING_KEY"}

BASE = {
    "groups": {"thingsboard": ["tb-host"]},
    "inventory_dir": "/nonexistent",
    "ansible_facts": {"memtotal_mb": 4096},
    "thingsboard_db_password": "x",
    "thingsboard_jwt_signing_key": "x",
}


def thingsboard_yml_names() -> set[str]:
    text = repo_path("specs", "thingsboard-4.2.2.3-thingsboard.yml").read_text()
    return set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):", text))


def stack(**overrides: Any) -> dict[str, Any]:
    rendered: dict[str, Any] = render("thingsboard", "stack.yml.j2", {**BASE, **overrides})
    return rendered


@pytest.mark.parametrize(
    "overrides",
    [{}, {"thingsboard_mqtt_published": True, "thingsboard_ts_type": "sql"}],
    ids=["defaults", "mqtt-published-sql"],
)
def test_stack_validates_against_the_docker_20_10_schema(overrides: dict[str, Any]) -> None:
    assert stack_schema_errors(stack(**overrides)) == []


def test_every_environment_variable_exists_in_thingsboard() -> None:
    known = thingsboard_yml_names() | START_SCRIPT_VARIABLES
    service = stack(thingsboard_environment={"CACHE_TYPE": "caffeine"})["services"]["tb-node"]
    exported = set(re.findall(r"export ([A-Z_]+)=|\b([A-Z_]+)=\"\$", service["entrypoint"][2]))
    names = set(service["environment"]) | {name for pair in exported for name in pair if name}
    assert names >= SECRET_VARIABLES
    assert sorted(names - known) == []


def test_the_install_job_variables_exist_too() -> None:
    task = repo_path("roles", "thingsboard", "tasks", "install.yml").read_text()
    added = set(re.findall(r"'([A-Z][A-Z0-9_]*)': '", task))
    assert added == {"INSTALL_TB", "LOAD_DEMO"}
    assert added <= thingsboard_yml_names() | START_SCRIPT_VARIABLES


def test_an_unknown_variable_would_be_caught() -> None:
    assert "TRANSPORT_TYPE" not in thingsboard_yml_names() | START_SCRIPT_VARIABLES


def test_heap_is_half_the_memory_within_bounds() -> None:
    def java_opts(memory: int, explicit: int = 0) -> str:
        env = stack(thingsboard_memory_mb=memory, thingsboard_java_heap_mb=explicit)
        opts: str = env["services"]["tb-node"]["environment"]["JAVA_OPTS"]
        return opts

    assert "-Xmx2048M" in java_opts(4096)
    assert "-Xmx1024M" in java_opts(1024)
    assert "-Xmx8192M" in java_opts(65536)
    assert "-Xmx3000M" in java_opts(65536, 3000)


def test_only_http_is_published_by_default() -> None:
    ports = stack()["services"]["tb-node"]["ports"]
    assert [(p["target"], p["mode"]) for p in ports] == [(8080, "host")]
    assert stack()["services"]["tb-node"]["deploy"]["endpoint_mode"] == "dnsrr"
