"""roles/emqx tasks_from dashboard_password against a strict stand-in node that still has
the vendor's default admin/public (a data volume from an earlier deployment)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lab.standins.emqx.emqx_standin.testing import StandinNode

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
ROLE_PASSWORD = "Role-pw-1234"
PLAYBOOK = """
- hosts: emqx
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: emqx
        tasks_from: dashboard_password
"""


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandinNode]:
    standin = StandinNode(
        "dash.emqx.test",
        tmp_path_factory.mktemp("dashboard"),
        extra_env={"EMQX_DASHBOARD__DEFAULT_PASSWORD": "public"},
    ).start()
    yield standin
    standin.stop()


def run_role(node: StandinNode, workdir: Path, password: str) -> subprocess.CompletedProcess[str]:
    inventory = workdir / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "vars": {
                        "ansible_connection": "local",
                        "ansible_python_interpreter": sys.executable,
                    },
                    "children": {"emqx": {"hosts": {"n1": None}}},
                }
            }
        )
    )
    (workdir / "play.yml").write_text(PLAYBOOK)
    variables = {
        "emqx_credentials_dir": str(workdir / "credentials"),
        "emqx_dashboard_password": password,
        "emqx_api_delegate": "n1",
        "emqx_api_url": node.api_url,
        "emqx_local_api_url": node.api_url,
        "emqx_local_node_name": node.node,
    }
    (workdir / "vars.yml").write_text(yaml.safe_dump(variables))
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    extra_vars = f"@{workdir / 'vars.yml'}"
    return subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), "-e", extra_vars, str(workdir / "play.yml")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def changed(output: str) -> int:
    match = re.search(r"^n1\s+:.*changed=(\d+)", output, flags=re.MULTILINE)
    assert match, output
    return int(match.group(1))


def login(node: StandinNode, password: str) -> int:
    status, _ = node.call("POST", "/api/v5/login", {"username": "admin", "password": password})
    return status


def test_the_default_password_is_replaced_then_refused(node: StandinNode, tmp_path: Path) -> None:
    assert login(node, "public") == 200
    first = run_role(node, tmp_path, ROLE_PASSWORD)
    assert first.returncode == 0, first.stdout[-3000:]
    assert changed(first.stdout) == 1
    assert ROLE_PASSWORD not in first.stdout
    assert login(node, "public") == 401
    assert login(node, ROLE_PASSWORD) == 200
    again = run_role(node, tmp_path, ROLE_PASSWORD)
    assert again.returncode == 0, again.stdout[-3000:]
    assert changed(again.stdout) == 0
    assert node.violations() == []


def test_it_fails_when_admin_takes_neither_password(node: StandinNode, tmp_path: Path) -> None:
    result = run_role(node, tmp_path, "Another-pw-5678")
    assert result.returncode != 0
    assert "Fail when admin takes neither password" in result.stdout
    assert "Another-pw-5678" not in result.stdout
    # The failed attempts are followed by none that succeeds here: clear them for EMQX.
    assert login(node, ROLE_PASSWORD) == 200
