"""Every module's documentation as ansible-doc reads it (doc fragments resolved): it loads,
documents the options the module takes, and its EXAMPLES and RETURN are YAML."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT

MODULE_DIRS = [REPO_ROOT / "library", *sorted(REPO_ROOT.glob("roles/*/library"))]
MODULES = {path.stem: path.parent for d in MODULE_DIRS for path in sorted(d.glob("*.py"))}
CONNECTION = {
    "emqx_": {"api_url", "api_key", "api_secret"},
    "tb_": {"url", "username", "password", "validate_certs", "timeout"},
}
FLEET = {"retries", "token"}


def ansible_doc(name: str) -> dict[str, Any]:
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-doc")),
            "--json",
            "-t",
            "module",
            "-M",
            str(MODULES[name]),
            name,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO_ROOT,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg")},
    )
    assert result.returncode == 0, result.stderr
    assert "ERROR" not in result.stderr, result.stderr
    entry: dict[str, Any] = json.loads(result.stdout)[name]
    return entry


@pytest.mark.parametrize("name", sorted(MODULES))
def test_ansible_doc_reads_the_module(name: str) -> None:
    entry = ansible_doc(name)
    doc = entry["doc"]
    assert doc["module"] == name
    assert doc["short_description"]
    for prefix, options in CONNECTION.items():
        if name.startswith(prefix) and name != "emqx_mqtt_probe":
            assert options <= set(doc["options"]), name
    if "token" in doc["options"]:
        assert set(doc["options"]) >= FLEET
    assert yaml.safe_load(entry["examples"])
    assert entry["return"]
