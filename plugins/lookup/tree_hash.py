"""Lookup plugin: one sha256 over files and directory trees, for content-addressed tags."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = r"""
name: tree_hash
short_description: sha256 over the content and relative names of files and directory trees
description:
  - Returns one hex digest over every regular file found under the given paths, in sorted
    order, hashing each file's path relative to its root and its bytes. Caches and bytecode
    (C(__pycache__), C(.mypy_cache), C(.pytest_cache), C(*.pyc)) are skipped.
  - Used to tag locally built images by their inputs, so an image is rebuilt exactly when
    one of its inputs changes.
options:
  _terms:
    description: Files or directories; relative paths are taken from the playbook directory.
    required: true
  extra:
    description: Additional strings mixed into the digest (build arguments, base image tags).
    type: list
    elements: str
    default: []
  length:
    description: Number of hex characters returned.
    type: int
    default: 12
"""

EXAMPLES = r"""
- name: Tag the VM image by what goes into it
  ansible.builtin.set_fact:
    vm_tag: "{{ lookup('tree_hash', 'lab/images/vm', extra=[base_ref]) }}"
"""

RETURN = r"""
_raw:
  description: The digest, truncated to O(length) characters.
  type: list
  elements: str
"""

SKIPPED_PARTS = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", "build", "dist"}


def tree_digest(roots: list[Path], extra: list[str]) -> str:
    """Digest of the files under ``roots`` (names relative to each root) and ``extra``."""
    digest = hashlib.sha256()
    for value in extra:
        digest.update(b"extra\0" + value.encode() + b"\0")
    for root in roots:
        if not root.exists():
            raise FileNotFoundError(root)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            relative = path.relative_to(root).parts if path != root else ()
            if (
                SKIPPED_PARTS.intersection(relative)
                or any(part.endswith(".egg-info") for part in relative)
                or path.suffix == ".pyc"
            ):
                continue
            name = path.name if path == root else path.relative_to(root).as_posix()
            digest.update(b"file\0" + name.encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


class LookupModule(LookupBase):  # type: ignore[misc]
    def run(self, terms: list[str], variables: Any = None, **kwargs: Any) -> list[str]:
        self.set_options(var_options=variables, direct=kwargs)
        base = Path(self._loader.get_basedir())
        roots = [Path(term) if Path(term).is_absolute() else base / term for term in terms]
        try:
            digest = tree_digest(roots, [str(v) for v in self.get_option("extra")])
        except FileNotFoundError as missing:
            raise AnsibleLookupError(f"tree_hash: no such file or directory: {missing}") from None
        return [digest[: self.get_option("length")]]
