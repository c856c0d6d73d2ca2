"""Helpers the molecule scenarios' tests share: commands on the controller and the lab VMs,
and ansible-playbook runs whose output the tests read."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.conftest import REPO_ROOT


def run(*args: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """A command on the controller; with check, a failure shows its output."""
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)}: rc={done.returncode}\n{done.stdout}\n{done.stderr}"
        )
    return done


def vm(name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """A command on a lab VM."""
    return run("docker", "exec", name, *args, check=check)


def playbook(inventory: Path, *args: str, timeout: int = 1800) -> subprocess.CompletedProcess[str]:
    """ansible-playbook from the repository root, in plain text (molecule exports
    ANSIBLE_FORCE_COLOR, and the tests parse the output); the caller judges the result."""
    env = {**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(
        ["ansible-playbook", "-i", str(inventory), *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def succeeded(done: subprocess.CompletedProcess[str]) -> str:
    """The output of a run that must have succeeded (else the end of its output)."""
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return done.stdout


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host, summed over the plays of one run."""
    totals: dict[str, dict[str, int]] = {}
    for name, counters in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", output, flags=re.MULTILINE):
        for key, value in re.findall(r"(\w+)=(\d+)", counters):
            totals.setdefault(name, {}).setdefault(key, 0)
            totals[name][key] += int(value)
    return totals


def changed(output: str) -> int:
    """Changed tasks of a run, over all hosts."""
    return sum(counters.get("changed", 0) for counters in recap(output).values())
