"""Inventories and playbook runs for the static TimescaleDB checks (no VM is contacted)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO_ROOT


def write_inventory(directory: Path, timescaledb: dict[str, Any] | None) -> Path:
    """Hosts named after containers that do not exist, so a contacted host fails loudly.

    ``timescaledb`` is the group's content, or None for an inventory without the group.
    """
    children: dict[str, Any] = {
        "swarm_managers": {"hosts": {"nohost-1": None}},
        "swarm_workers": {"hosts": {"nohost-2": None}},
    }
    if timescaledb is not None:
        children["timescaledb"] = timescaledb
    inventory = directory / "inventory"
    (inventory / "group_vars" / "all").mkdir(parents=True, exist_ok=True)
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": children}}))
    (inventory / "group_vars" / "all" / "connection.yml").write_text(
        yaml.safe_dump(
            {
                "ansible_connection": "community.docker.docker",
                "ansible_python_interpreter": "/usr/bin/python3",
            }
        )
    )
    return inventory


def ansible_playbook(
    inventory: Path, playbook: str, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    return subprocess.run(
        ["ansible-playbook", "-i", str(inventory), playbook, *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
