"""The rendered stack: valid for Docker 20.10's `docker stack deploy`, and the contract the
other roles and both images rely on."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import REPO_ROOT
from tests.timescaledb.conftest import ansible_playbook, write_inventory

SCHEMA = REPO_ROOT / "specs" / "docker-cli-20.10.24-config_schema_v3.9.json"
STANDIN_ENTRYPOINT = REPO_ROOT / "lab" / "standins" / "timescaledb" / "docker-entrypoint.sh"
VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {"timescaledb_memory_mb": 4096},
    "published": {
        "timescaledb_memory_mb": 65536,
        "timescaledb_published_port": 15432,
        "timescaledb_max_connections": 300,
        "timescaledb_settings": {"work_mem": "32MB", "log_min_duration_statement": 1000},
        "timescaledb_telemetry": True,
        "timescaledb_network": "fleet",
        "timescaledb_image": "registry.example:5000/timescale/timescaledb:2.29.2-pg16",
    },
}
# Environment variables of the vendor image the stack may set, with where they are defined:
#   docker-library/postgres docker-entrypoint.sh (timescale/timescaledb builds on it):
#     POSTGRES_USER, POSTGRES_PASSWORD_FILE, PGDATA
#   timescale/timescaledb-docker docker-entrypoint-initdb.d/000_install_timescaledb.sh:
#     TIMESCALEDB_TELEMETRY; .../001_timescaledb_tune.sh: TS_TUNE_MEMORY, TS_TUNE_MAX_CONNS
VENDOR_ENVIRONMENT = {
    "POSTGRES_USER",
    "POSTGRES_PASSWORD_FILE",
    "PGDATA",
    "TIMESCALEDB_TELEMETRY",
    "TS_TUNE_MEMORY",
    "TS_TUNE_MAX_CONNS",
}
RENDER = """\
- name: Render the TimescaleDB stack variants
  hosts: timescaledb
  gather_facts: false
  tasks:
{tasks}
"""
RENDER_VARIANT = """\
    - name: Render {name}
      ansible.builtin.include_role:
        name: timescaledb
        tasks_from: render.yml
      vars: {variables}
    - name: Write {name}
      ansible.builtin.copy:
        content: "{{{{ timescaledb_stack_definition | to_json }}}}"
        dest: "{dest}"
        mode: "0644"
      delegate_to: localhost
"""


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Each variant rendered by the role's own tasks/render.yml."""
    directory = tmp_path_factory.mktemp("stacks")
    inventory = write_inventory(directory, {"hosts": {"nohost-2": None}})
    tasks = "".join(
        RENDER_VARIANT.format(name=name, variables=json.dumps(variables), dest=directory / name)
        for name, variables in VARIANTS.items()
    )
    playbook = directory / "render.yml"
    playbook.write_text(RENDER.format(tasks=tasks))
    done = ansible_playbook(inventory, str(playbook))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    return {name: json.loads((directory / name).read_text()) for name in VARIANTS}


def deployed(stack: dict[str, Any]) -> dict[str, Any]:
    """The file roles/swarm_stack writes: plus the top-level secrets section."""
    return {
        **stack,
        "secrets": {
            "superuser_password": {
                "external": True,
                "name": "timescaledb_superuser_password_0123456789ab",
            }
        },
    }


@pytest.mark.parametrize("variant", VARIANTS)
def test_stack_validates_against_the_docker_20_10_schema(
    stacks: dict[str, dict[str, Any]], variant: str
) -> None:
    schema = json.loads(SCHEMA.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    errors = list(validator_class(schema).iter_errors(deployed(stacks[variant])))
    assert errors == [], [error.message for error in errors]


def service(stack: dict[str, Any]) -> dict[str, Any]:
    assert list(stack["services"]) == ["timescaledb"]
    found: dict[str, Any] = stack["services"]["timescaledb"]
    return found


def test_defaults_keep_the_database_on_the_overlay_pinned_to_its_host(
    stacks: dict[str, dict[str, Any]],
) -> None:
    stack = stacks["defaults"]
    db = service(stack)
    assert stack["version"] == "3.9"
    assert db["image"] == "timescale/timescaledb:2.29.2-pg16"
    assert "ports" not in db
    assert db["deploy"]["endpoint_mode"] == "dnsrr"
    assert db["deploy"]["replicas"] == 1
    assert db["deploy"]["placement"]["constraints"] == ["node.labels.tinyml.host == nohost-2"]
    assert db["deploy"]["update_config"]["order"] == "stop-first"
    assert db["networks"] == ["tinyml"]
    assert stack["networks"] == {"tinyml": {"external": True}}
    assert stack["volumes"] == {"data": {"name": "timescaledb_data"}}
    assert {"type": "volume", "source": "data", "target": "/var/lib/postgresql/data"} in db[
        "volumes"
    ]
    assert db["secrets"] == [
        {"source": "superuser_password", "target": "superuser_password", "mode": 0o400}
    ]
    assert db["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/superuser_password"
    assert not any("PASSWORD=" in str(value) for value in db["environment"].values())
    assert db["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert db["stop_signal"] == "SIGINT"


def settings(db: dict[str, Any]) -> dict[str, str]:
    command: list[str] = db["command"]
    assert command[0] == "postgres"
    assert command[1::2] == ["-c"] * (len(command) // 2)
    return dict(pair.split("=", 1) for pair in command[2::2])


def test_command_carries_the_derived_settings(stacks: dict[str, dict[str, Any]]) -> None:
    assert settings(service(stacks["defaults"])) == {
        "effective_cache_size": "3072MB",
        "maintenance_work_mem": "256MB",
        "max_connections": "100",
        "shared_buffers": "1024MB",
        "timescaledb.telemetry_level": "off",
        "work_mem": "10485kB",
    }
    assert service(stacks["defaults"])["environment"]["TIMESCALEDB_TELEMETRY"] == "off"


def test_variables_publish_the_port_and_override_settings(
    stacks: dict[str, dict[str, Any]],
) -> None:
    stack = stacks["published"]
    db = service(stack)
    assert db["ports"] == [{"target": 5432, "published": 15432, "protocol": "tcp", "mode": "host"}]
    assert db["image"] == VARIANTS["published"]["timescaledb_image"]
    assert db["networks"] == ["fleet"]
    assert stack["networks"] == {"fleet": {"external": True}}
    server = settings(db)
    assert server["work_mem"] == "32MB"  # timescaledb_settings wins
    assert server["log_min_duration_statement"] == "1000"
    assert server["shared_buffers"] == "16384MB"
    assert server["max_connections"] == "300"
    assert server["timescaledb.telemetry_level"] == "basic"
    assert db["environment"]["TS_TUNE_MEMORY"] == "65536MB"
    assert db["environment"]["TS_TUNE_MAX_CONNS"] == "300"


def test_environment_is_the_vendor_contract_and_the_standin_keeps_it(
    stacks: dict[str, dict[str, Any]],
) -> None:
    entrypoint = STANDIN_ENTRYPOINT.read_text()
    for variant in VARIANTS:
        names = set(service(stacks[variant])["environment"])
        assert names <= VENDOR_ENVIRONMENT, names - VENDOR_ENVIRONMENT
        for name in names:
            assert re.search(rf"\b{name}\b", entrypoint), f"the stand-in ignores {name} silently"


def postgres_binary() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    return found[-1] if found else (Path(p) if (p := shutil.which("postgres")) else None)


@pytest.mark.skipif(postgres_binary() is None, reason="no PostgreSQL server binary here")
def test_every_setting_is_a_postgresql_parameter(stacks: dict[str, dict[str, Any]]) -> None:
    binary = postgres_binary()
    assert binary is not None
    described = subprocess.run(
        [str(binary), "--describe-config"],
        capture_output=True,
        text=True,
        check=True,
        user="nobody" if Path("/proc/self").owner() == "root" else None,
    ).stdout
    known = {line.split("\t", 1)[0] for line in described.splitlines()}
    for variant in VARIANTS:
        for name in settings(service(stacks[variant])):
            if not name.startswith("timescaledb."):  # the extension's own, in the vendor image
                assert name in known, name
