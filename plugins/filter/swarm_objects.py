"""Filters for swarm objects that are named by their content."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

DIGEST_LENGTH = 12


def content_bytes(value: Any) -> bytes:
    """A secret's or config's content: text, or ``{"b64": ...}`` for binary (a model)."""
    if isinstance(value, Mapping):
        return base64.b64decode(value["b64"])
    return str(value).encode()


def content_name(prefix: str, logical: str, content: bytes) -> str:
    """``<prefix>_<logical>_<sha256[:12]>``: a new name whenever the content changes.

    Swarm secrets and configs are immutable; a service that refers to the new name is
    updated, so a changed secret or config rolls out. For a model file the digest is the
    start of the sha256 its model card records.
    """
    digest = hashlib.sha256(content).hexdigest()[:DIGEST_LENGTH]
    return f"{prefix}_{logical}_{digest}"


def swarm_object_names(contents: Mapping[str, Any], prefix: str) -> dict[str, str]:
    """Map each logical name of ``contents`` to its content-addressed swarm object name."""
    return {
        logical: content_name(prefix, logical, content_bytes(value))
        for logical, value in contents.items()
    }


def swarm_external_objects(names: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The top-level ``secrets:``/``configs:`` section of a stack file for ``names``."""
    return {logical: {"external": True, "name": name} for logical, name in names.items()}


# `docker stack services --format '{{.Name}} {{.Mode}} {{.Replicas}}'`, e.g.
# "emqx_node1 replicated 1/1" or "sim_lab-vm2 replicated 0/2 (max 1 per node)".
SERVICE_LINE = re.compile(r"^(?P<name>\S+) (?P<mode>\S+) (?P<running>\d+)/(?P<desired>\d+)")


def unconverged_services(lines: Iterable[str]) -> list[str]:
    """Replicated and global services that do not yet run their desired number of tasks.

    Jobs (replicated-job, global-job) run to completion and are not waited for here.
    """
    pending = []
    for line in lines:
        match = SERVICE_LINE.match(line)
        if (
            match
            and match["mode"] in ("replicated", "global")
            and match["running"] != match["desired"]
        ):
            pending.append(match["name"])
    return pending


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "swarm_object_names": swarm_object_names,
            "swarm_external_objects": swarm_external_objects,
            "unconverged_services": unconverged_services,
        }
