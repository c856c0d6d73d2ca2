"""Shared pytest configuration for the repository-level tests."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import ansible.module_utils

REPO_ROOT = Path(__file__).resolve().parents[1]
# Where Ansible finds the repository's modules (ansible.cfg's library, and roles' own).
MODULE_DIRS = [REPO_ROOT / "library", *sorted(REPO_ROOT.glob("roles/*/library"))]


def _expose_module_utils() -> None:
    """Make the repository's module_utils importable as ansible.module_utils.<name>, which is
    how Ansible resolves them for modules, so tests can import modules and utils directly."""
    path = str(REPO_ROOT / "module_utils")
    if path not in ansible.module_utils.__path__:
        ansible.module_utils.__path__.append(path)


_expose_module_utils()


def load_source(path: str, name: str | None = None) -> ModuleType:
    """Import a repository file by its path (filters, lookups, modules and role scripts are
    not packages), registered in sys.modules under ``name`` (default: the file's stem)."""
    spec = importlib.util.spec_from_file_location(name or Path(path).stem, REPO_ROOT / path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def ansible_doc(name: str) -> dict[str, Any]:
    """A module's documentation as ansible-doc reads it (doc fragments resolved): its
    --json entry, with "doc", "examples" and "return"."""
    directory = next(d for d in MODULE_DIRS if (d / f"{name}.py").exists())
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-doc")),
            "--json",
            "-t",
            "module",
            "-M",
            str(directory),
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
