"""Helpers for the emqx_* module tests: run a module through ansible-playbook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from lab.standins.emqx.emqx_standin.testing import API_KEY, API_SECRET, StandinNode

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")


def connection(node: StandinNode) -> dict[str, Any]:
    return {"api_url": node.api_url, "api_key": API_KEY, "api_secret": API_SECRET}


class Runner:
    """Runs one module task through ansible-playbook, as the role will (library/ and
    module_utils/ found through ANSIBLE_LIBRARY / ANSIBLE_MODULE_UTILS)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.count = 0

    def __call__(
        self, module: str, args: dict[str, Any], *, check: bool = False, diff: bool = False
    ) -> dict[str, Any]:
        self.count += 1
        vars_file = self.workdir / f"args-{self.count}.json"
        vars_file.write_text(json.dumps({"module_args": args}), encoding="utf-8")
        result_file = self.workdir / f"result-{self.count}.json"
        playbook = self.workdir / f"play-{self.count}.yml"
        playbook.write_text(
            f"""
- hosts: localhost
  gather_facts: false
  vars_files: [{vars_file}]
  tasks:
    - name: module under test
      {module}: "{{{{ module_args }}}}"
      register: result
      ignore_errors: true
    - name: keep the result
      ansible.builtin.copy:
        content: "{{{{ result | to_json }}}}"
        dest: {result_file}
      check_mode: false
      diff: false
""",
            encoding="utf-8",
        )
        env = {
            **os.environ,
            "ANSIBLE_CONFIG": str(self.workdir / "none.cfg"),
            "ANSIBLE_LIBRARY": str(REPO / "library"),
            "ANSIBLE_MODULE_UTILS": str(REPO / "module_utils"),
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        }
        command = [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "-c", "local", str(playbook)]
        command += ["--check"] if check else []
        command += ["--diff"] if diff else []
        completed = subprocess.run(
            command, cwd=self.workdir, env=env, capture_output=True, text=True, check=False
        )
        if not result_file.exists():
            raise AssertionError(completed.stdout + completed.stderr)
        result: dict[str, Any] = json.loads(result_file.read_text(encoding="utf-8"))
        result["_stdout"] = completed.stdout
        return result
