"""Fixtures: the ThingsBoard stand-in on a throw-away PostgreSQL (the lab stand-in tests'
fixture), an EMQX stand-in node, a fresh tenant per test, and a runner for module tasks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lab.standins.emqx.emqx_standin.testing import StandinNode
from lab.standins.thingsboard.tests.conftest import (  # noqa: F401  (fixture)
    Postgres,
    postgres,
)
from tests.tb_provision import harness

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tb(postgres: Postgres) -> Iterator[harness.ThingsBoard]:  # noqa: F811
    with harness.thingsboard_standin(postgres, "tbprovision") as standin:
        yield standin


@pytest.fixture(scope="session")
def emqx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandinNode]:
    node = StandinNode("provision.emqx.test", tmp_path_factory.mktemp("emqx")).start()
    yield node
    node.stop()


@pytest.fixture
def tenant(tb: harness.ThingsBoard) -> harness.Tenant:
    tag = uuid.uuid4().hex[:8]
    return harness.new_tenant(tb, f"Fleet {tag}", f"admin-{tag}@fleet.test")


@pytest.fixture(autouse=True)
def no_spec_violations(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every request the modules send must conform to the vendors' OpenAPI specs."""
    yield
    for name in ("tb", "emqx"):
        if name in request.fixturenames:
            found = request.getfixturevalue(name).violations()
            assert found == [], found


@dataclass
class Step:
    module: str
    args: dict[str, Any]
    check: bool = False
    diff: bool = False


@dataclass
class Tasks:
    """Module tasks run in one ansible-playbook (one start-up for several calls), each as a
    role runs it; returns each task's registered result."""

    workdir: Path
    count: int = 0
    env: dict[str, str] = field(default_factory=dict)

    def __call__(self, *steps: Step) -> list[dict[str, Any]]:
        self.count += 1
        base = self.workdir / f"run-{self.count}"
        base.mkdir(parents=True)
        (base / "vars.json").write_text(json.dumps({"steps": [s.args for s in steps]}))
        tasks = []
        for index, step in enumerate(steps):
            tasks.append(
                f"""
    - name: step {index}
      {step.module}: "{{{{ steps[{index}] }}}}"
      check_mode: {str(step.check).lower()}
      diff: {str(step.diff).lower()}
      register: result_{index}
      ignore_errors: true"""
            )
        names = ", ".join(f"result_{i}" for i in range(len(steps)))
        (base / "play.yml").write_text(
            f"""
- hosts: localhost
  gather_facts: false
  vars_files: [{base / "vars.json"}]
  tasks:{"".join(tasks)}
    - name: keep the results
      ansible.builtin.copy:
        content: "{{{{ [{names}] | to_json }}}}"
        dest: {base / "results.json"}
      check_mode: false
      diff: false
"""
        )
        env = {
            **os.environ,
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
            "ANSIBLE_NOCOLOR": "1",
            **self.env,
        }
        done = subprocess.run(
            ["ansible-playbook", "-i", "localhost,", "-c", "local", str(base / "play.yml")],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        results_file = base / "results.json"
        assert results_file.exists(), done.stdout[-4000:] + done.stderr[-4000:]
        results: list[dict[str, Any]] = json.loads(results_file.read_text())
        return results


@pytest.fixture
def tasks(tmp_path: Path) -> Tasks:
    return Tasks(tmp_path)


def connection(tenant: harness.Tenant, url: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "url": url or tenant.url,
        "username": tenant.username,
        "password": tenant.password,
        **extra,
    }
