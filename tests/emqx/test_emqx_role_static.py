"""Static checks of roles/emqx: the stack it renders (compose 3.9 as Docker 20.10's
`docker stack deploy` reads it), every EMQX_* variable and every key inside the HOCON values
it sets against EMQX 5.8.6's configuration schema, and its variables' documentation.

The stack is rendered by Ansible itself: a tiny playbook runs the role's `render` entry point
against a throw-away inventory (nothing is contacted).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from lab.standins.common import hocon
from tests.emqx.emqx_config_schema import ConfigSchema, check_env, load_schema

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "emqx"
COMPOSE_SCHEMA = REPO / "specs" / "docker-cli-20.10.24-config_schema_v3.9.json"
CONFIG_DUMP = REPO / "specs" / "emqx-ce-5.8.6-config-schema.json"
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
HOSTS = ["emqx-a", "emqx-b.example.com", "emqx-c"]

# Variable sets the stack is rendered with (beyond the role's defaults).
VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "tcp_off": {"emqx_listener_tcp_enable": False},
    "dashboard_published": {"emqx_dashboard_publish": True, "emqx_dashboard_port": 28083},
    "lab": yaml.safe_load(
        (REPO / "inventories" / "lab" / "group_vars" / "all" / "emqx.yml").read_text()
    ),
}
PLAYBOOK = """
- hosts: emqx
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: emqx
        tasks_from: render
    - ansible.builtin.copy:
        content: "{{ emqx_stack_definition | to_json }}"
        dest: "{{ out }}"
      delegate_to: localhost
      run_once: true
"""


def render(workdir: Path, hosts: list[str], variables: Mapping[str, Any]) -> dict[str, Any]:
    inventory = workdir / "inventory"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(
        yaml.safe_dump(
            {
                "all": {
                    "vars": {"ansible_connection": "local"},
                    "children": {"emqx": {"hosts": dict.fromkeys(hosts)}},
                }
            }
        )
    )
    (inventory / "group_vars" / "all" / "vars.yml").write_text(yaml.safe_dump(dict(variables)))
    (workdir / "render.yml").write_text(PLAYBOOK)
    out = workdir / "stack.json"
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }
    result = subprocess.run(
        [
            str(ANSIBLE_PLAYBOOK),
            "-i",
            str(inventory),
            "-e",
            f"out={out}",
            str(workdir / "render.yml"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    stack: dict[str, Any] = json.loads(out.read_text())
    return stack


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    rendered = {
        name: render(tmp_path_factory.mktemp(name), HOSTS, variables)
        for name, variables in VARIANTS.items()
    }
    rendered["single"] = render(tmp_path_factory.mktemp("single"), HOSTS[:1], {})
    return rendered


@pytest.fixture(scope="module")
def schema() -> ConfigSchema:
    return load_schema()


def services(stack: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from stack["services"].items()


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in service["environment"].items()}


# -- the stack file ----------------------------------------------------------------------
@pytest.mark.parametrize("variant", [*VARIANTS, "single"])
def test_the_stack_validates_against_docker_20_10s_compose_3_9_schema(
    stacks: dict[str, dict[str, Any]], variant: str
) -> None:
    stack = stacks[variant]
    # roles/swarm_stack adds the secrets/configs sections that map logical names to objects.
    names = {
        kind: {ref["source"] for _, service in services(stack) for ref in service.get(kind, [])}
        for kind in ("secrets", "configs")
    }
    full = {
        **stack,
        **{
            kind: {n: {"external": True, "name": f"emqx_{n}_0123456789ab"} for n in found}
            for kind, found in names.items()
        },
    }
    assert stack["version"] == "3.9"
    validator = jsonschema.Draft4Validator(json.loads(COMPOSE_SCHEMA.read_text()))
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(full)]
    assert errors == []


def test_one_service_per_host_pinned_with_a_stable_name_and_aliases(
    stacks: dict[str, dict[str, Any]],
) -> None:
    stack = stacks["defaults"]
    labels = {"emqx-a": "emqx-a", "emqx-b.example.com": "emqx-b-example-com", "emqx-c": "emqx-c"}
    assert set(stack["services"]) == set(labels.values())
    seeds = [f"emqx@{label}.emqx.tinyml" for label in labels.values()]
    for host, label in labels.items():
        service = stack["services"][label]
        env = environment(service)
        alias = f"{label}.emqx.tinyml"
        assert env["EMQX_NODE__NAME"] == f"emqx@{alias}"
        assert env["EMQX_CLUSTER__DISCOVERY_STRATEGY"] == "static"
        assert json.loads(env["EMQX_CLUSTER__STATIC__SEEDS"]) == seeds
        # Its own alias, and the shared one the gateway's broker host names.
        assert service["networks"]["tinyml"]["aliases"] == [alias, "emqx.tinyml"]
        assert service["hostname"] == alias
        assert service["deploy"]["placement"]["constraints"] == [
            f"node.labels.tinyml.host == {host}"
        ]
        assert service["deploy"]["replicas"] == 1
        assert service["deploy"]["endpoint_mode"] == "dnsrr"
        assert service["volumes"] == [
            {"type": "volume", "source": f"data-{label}", "target": "/opt/emqx/data"}
        ]
        assert "emqx ctl status" in service["healthcheck"]["test"][1]
    assert set(stack["volumes"]) == {f"data-{label}" for label in labels.values()}
    assert stack["networks"]["tinyml"] == {"external": True, "name": "tinyml"}


def published(service: Mapping[str, Any]) -> dict[int, int]:
    ports = service.get("ports", [])
    assert all(p["mode"] == "host" for p in ports)
    return {p["target"]: p["published"] for p in ports}


def test_ports_1883_and_8883_in_host_mode_and_no_dashboard_by_default(
    stacks: dict[str, dict[str, Any]],
) -> None:
    for _, service in services(stacks["defaults"]):
        assert published(service) == {8883: 8883, 1883: 1883}
        assert environment(service)["EMQX_LISTENERS__TCP__DEFAULT__ENABLE"] == "true"
    for _, service in services(stacks["tcp_off"]):
        assert published(service) == {8883: 8883}
        assert environment(service)["EMQX_LISTENERS__TCP__DEFAULT__ENABLE"] == "false"
    for _, service in services(stacks["dashboard_published"]):
        assert published(service) == {8883: 8883, 1883: 1883, 18083: 28083}


def test_a_single_node_seeds_only_itself(stacks: dict[str, dict[str, Any]]) -> None:
    (service,) = stacks["single"]["services"].values()
    assert json.loads(environment(service)["EMQX_CLUSTER__STATIC__SEEDS"]) == [
        "emqx@emqx-a.emqx.tinyml"
    ]


def test_production_runs_the_vendor_image_and_only_the_lab_a_stand_in(
    stacks: dict[str, dict[str, Any]],
) -> None:
    for _, service in services(stacks["defaults"]):
        assert service["image"] == "emqx/emqx:5.8.9"
        assert not any(name.startswith("STANDIN_") for name in service["environment"])
    for _, service in services(stacks["lab"]):
        assert service["image"] == "registry.lab:5000/lab/emqx:5.8.9"
        assert service["environment"]["STANDIN_SPEC_STRICT"] == "1"


def test_secrets_are_swarm_secrets_never_values(stacks: dict[str, dict[str, Any]]) -> None:
    for _, service in services(stacks["defaults"]):
        env = environment(service)
        assert "EMQX_NODE__COOKIE" not in env
        assert "EMQX_DASHBOARD__DEFAULT_PASSWORD" not in env
        assert env["EMQX_API_KEY__BOOTSTRAP_FILE"] == "/run/secrets/emqx_api_keys"
        assert {s["source"] for s in service["secrets"]} == {
            "emqx_cookie",
            "emqx_dashboard_password",
            "emqx_api_keys",
            "emqx_tls_key",
        }
        assert all(s["mode"] == 0o400 and s["uid"] == "1000" for s in service["secrets"])
        script = service["entrypoint"][2]
        assert 'EMQX_NODE__COOKIE="$$(cat /run/secrets/emqx_cookie)"' in script
        assert "exec /usr/bin/docker-entrypoint.sh /opt/emqx/bin/emqx foreground" in script


# -- EMQX configuration names ------------------------------------------------------------
def scripted_env_names(service: Mapping[str, Any]) -> set[str]:
    """EMQX_* names set by the entrypoint wrapper and the healthcheck scripts."""
    text = " ".join([*service["entrypoint"], *service["healthcheck"]["test"]])
    return set(re.findall(r"\b(EMQX_[A-Z0-9_]+)=", text))


@pytest.mark.parametrize("variant", [*VARIANTS, "single"])
def test_every_emqx_variable_exists_in_emqx_5_8(
    stacks: dict[str, dict[str, Any]], schema: ConfigSchema, variant: str
) -> None:
    for _, service in services(stacks[variant]):
        names = set(service["environment"]) | scripted_env_names(service)
        assert {"EMQX_NODE__COOKIE", "EMQX_DASHBOARD__DEFAULT_PASSWORD"} <= names
        assert check_env(schema, sorted(names)) == []


def test_enumerated_values_are_ones_emqx_accepts(
    stacks: dict[str, dict[str, Any]], schema: ConfigSchema
) -> None:
    enums = {
        "EMQX_CLUSTER__DISCOVERY_STRATEGY": "cluster.discovery_strategy",
        "EMQX_AUTHORIZATION__NO_MATCH": "authorization.no_match",
        "EMQX_LOG__CONSOLE__LEVEL": "log.console.level",
    }
    for _, service in services(stacks["defaults"]):
        env = environment(service)
        for name, path in enums.items():
            match = re.fullmatch(r"Enum\((.*)\)", schema.types[path])
            assert match, schema.types[path]
            assert env[name] in match.group(1).split(","), name
        for name in env:
            if name.endswith("__ENABLE"):
                assert env[name] in ("true", "false"), name


def config_struct(root: str, field: str, variant: str) -> dict[str, str]:
    """Fields (name -> type) of the variant ``variant`` of the array ``root.field``."""
    dump = json.loads(CONFIG_DUMP.read_text())
    node = next(f for f in dump["fields"] if f["text"] == root)
    if field:
        node = next(f for ref in node["refs"] for f in ref["fields"] if f["text"] == field)
    struct = next(ref for ref in node["refs"] if ref.get("text") == variant)
    return {f["text"]: str(f.get("type")) for f in struct["fields"]}


def check_entries(entries: Any, fields: Mapping[str, str]) -> list[str]:
    problems = []
    for entry in entries:
        for key, value in entry.items():
            kind = fields.get(key)
            if kind is None:
                problems.append(f"{key} is not a field of this variant")
            elif kind.startswith("String(") and f'"{value}"' not in kind:
                problems.append(f"{key}={value}, EMQX wants {kind}")
            elif kind.startswith("Enum(") and str(value) not in kind[5:-1].split(","):
                problems.append(f"{key}={value} not in {kind}")
    return problems


def test_authentication_and_authorization_entries_are_emqx_fields(
    stacks: dict[str, dict[str, Any]],
) -> None:
    for _, service in services(stacks["defaults"]):
        env = environment(service)
        authn = hocon.parse_value(env["EMQX_AUTHENTICATION"])
        assert authn == [
            {
                "mechanism": "password_based",
                "backend": "built_in_database",
                "user_id_type": "username",
            }
        ]
        assert check_entries(authn, config_struct("authentication", "", "builtin_db")) == []
        sources = hocon.parse_value(env["EMQX_AUTHORIZATION__SOURCES"])
        assert sources == [{"type": "built_in_database"}]
        fields = config_struct("authorization", "sources", "builtin_db")
        assert check_entries(sources, fields) == []
        assert env["EMQX_AUTHORIZATION__NO_MATCH"] == "deny"


# -- the role's variables ----------------------------------------------------------------
def test_every_default_is_documented_in_the_argument_specs() -> None:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())
    options = specs["argument_specs"]["main"]["options"]
    assert set(defaults) == set(options)
    for name, value in defaults.items():
        assert options[name]["description"], name
        if not (isinstance(value, str) and "{{" in value):
            assert options[name].get("default") == value, name
    common = set(options) - {name for name in options if name.startswith("emqx_devices")}
    for entry in ("devices", "api_endpoint", "endpoints", "render", "dashboard_password"):
        entry_options = set(specs["argument_specs"][entry]["options"])
        assert common <= entry_options <= set(options), entry
    # The device list itself is checked by the filters (templating it costs seconds).
    assert "emqx_devices" not in specs["argument_specs"]["devices"]["options"]
    readme = (ROLE / "README.md").read_text()
    for name in defaults:
        assert f"`{name}`" in readme, f"{name} is not in the README's table"
