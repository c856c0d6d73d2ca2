"""Shared pytest configuration for the repository-level tests."""

from __future__ import annotations

from pathlib import Path

import ansible.module_utils

REPO_ROOT = Path(__file__).resolve().parents[1]


def _expose_module_utils() -> None:
    """Make the repository's module_utils importable as ansible.module_utils.<name>, which is
    how Ansible resolves them for modules, so tests can import modules and utils directly."""
    path = str(REPO_ROOT / "module_utils")
    if path not in ansible.module_utils.__path__:
        ansible.module_utils.__path__.append(path)


_expose_module_utils()
