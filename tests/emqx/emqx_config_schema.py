"""Static checks of EMQX configuration names against the vendor's config-schema dump.

Use from a test (the lead's stack-file test, for example)::

    from emqx_config_schema import load_schema, check_env

    problems = check_env(load_schema(), service["environment"])
    assert problems == []

The dump (specs/emqx-ce-5.8.6-config-schema.json, see specs/SOURCES.md) is a tree of field
nodes. A field's ``refs`` are the structs it holds; ``Map($name->...)`` adds one free segment
before the fields of its refs; ``Array(OneOf(...))`` and ``OneOf(...)`` merge the fields of all
variants. Fields marked hidden in EMQX's Erlang schema are not in the dump: setting one needs an
entry in HIDDEN_ALLOWED below, with the reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO / "specs" / "emqx-ce-5.8.6-config-schema.json"

FREE = "$name"  # one free segment (a map key such as a listener name)

# Variables that are not config paths: the vendor image's entrypoint builds the node name
# from them (deploy/docker/docker-entrypoint.sh, specs/SOURCES.md).
ENTRYPOINT_VARS = frozenset({"EMQX_NAME", "EMQX_HOST", "EMQX_NODE_NAME"})

# Hidden fields (importance hidden / no_doc in 5.8.6, so absent from the dump) that the
# project may set; "$name" stands for one free segment. Each needs a reason; keep it short.
HIDDEN_ALLOWED: dict[str, str] = {
    # Default "admin"; documented on docs.emqx.com dashboard configuration (5.8).
    "dashboard.default_username": "hidden but documented dashboard login name",
    # A listener's on/off switch (default true) is not in the dump: emqx_schema marks it
    # no_doc. It is what the dashboard's listener toggle writes, and EMQX's own test configs
    # disable default listeners this way. The role turns off plain TCP and WebSocket with it.
    # The name is "enable" ("enabled" is only its alias): emqx/emqx apps/emqx/src/
    # emqx_schema.erl, base_listener/1: {"enable", sc(boolean(), #{default => true,
    # aliases => [enabled], importance => ?IMPORTANCE_NO_DOC})}; docs.emqx.com's 5.3 to 5.7
    # configuration manuals list listeners.tcp.<name>.enable with "Aliases: enabled".
    "listeners.tcp.$name.enable": "listener switch (no_doc)",
    "listeners.ssl.$name.enable": "listener switch (no_doc)",
    "listeners.ws.$name.enable": "listener switch (no_doc)",
    "listeners.wss.$name.enable": "listener switch (no_doc)",
}

# Vendor example keys the walk cannot find, as listed in specs/SOURCES.md ("Cross-check").
EXAMPLE_EXCEPTIONS = (
    re.compile(r"^node\.process_limit$"),  # hidden (deprecated)
    re.compile(r"^conn_congestion\."),  # hidden
)


@dataclass
class ConfigSchema:
    """Dotted paths of every config node (leaves and structs), free segments as ``$name``."""

    paths: set[str] = field(default_factory=set)
    types: dict[str, str] = field(default_factory=dict)  # path -> the dump's type text
    arrays: set[str] = field(default_factory=set)  # paths whose value is an array
    free_maps: set[str] = field(default_factory=set)  # maps of scalars: any sub-key is valid

    def has(self, path: str) -> bool:
        """True when ``path`` (dotted, lower case) names a node of the schema."""
        return _match(self, path.split("."))


def load_schema(schema_file: Path = SCHEMA_FILE) -> ConfigSchema:
    root = json.loads(schema_file.read_text(encoding="utf-8"))
    schema = ConfigSchema()
    _walk(root, (), schema)
    return schema


def _walk(node: Mapping[str, Any], prefix: tuple[str, ...], schema: ConfigSchema) -> None:
    for fld in node.get("fields", []):
        path = (*prefix, fld["text"])
        type_ = str(fld.get("type", ""))
        schema.paths.add(".".join(path))
        schema.types.setdefault(".".join(path), type_)
        if type_.startswith("Array("):
            schema.arrays.add(".".join(path))
        refs = fld.get("refs", [])
        # "Map" alone (no refs) is a free-form map such as HTTP headers.
        has_map = type_ == "Map" or "Map(" in type_
        if has_map and not refs:
            schema.free_maps.add(".".join(path))
        if not refs:
            continue
        bases = []
        if not type_.startswith("Map("):
            bases.append(path)  # Struct, OneOf, Array(OneOf): fields merge under the path
        if has_map:
            schema.paths.add(".".join((*path, FREE)))
            bases.append((*path, FREE))
        for base in bases:
            for ref in refs:
                _walk(ref, base, schema)


def _match(schema: ConfigSchema, segments: list[str]) -> bool:
    """Match segments against the paths, letting $name stand for any one segment and
    numeric segments index into arrays (EMQX_AUTHENTICATION__1__MECHANISM)."""
    candidates: list[tuple[str, ...]] = [()]
    for segment in segments:
        following: list[tuple[str, ...]] = []
        for done in candidates:
            here = ".".join(done)
            if here in schema.free_maps:
                following.append((*done, FREE))
                continue
            if segment.isdigit() and here in schema.arrays:
                following.append(done)  # the index stays on the array's own path
                continue
            for option in (segment, FREE):
                path = (*done, option)
                if ".".join(path) in schema.paths:
                    following.append(path)
        candidates = following
        if not candidates:
            return False
    return True


def env_var_to_path(name: str) -> str | None:
    """EMQX_A__B_C -> "a.b_c" (drop the prefix, split on __, lower case); None if not EMQX_."""
    if not name.startswith("EMQX_"):
        return None
    return ".".join(part.lower() for part in name[len("EMQX_") :].split("__"))


def check_env_var(schema: ConfigSchema, name: str) -> str | None:
    """Return why an EMQX_* variable is wrong, or None when EMQX knows it."""
    if name in ENTRYPOINT_VARS:
        return None
    path = env_var_to_path(name)
    if path is None:
        return f"{name}: not an EMQX_ variable"
    if any(not part for part in path.split(".")):
        return f"{name}: empty path segment (use __ only between names)"
    if _hidden_allowed(path) or schema.has(path):
        return None
    return f"{name}: {path} is not in the EMQX 5.8.6 config schema"


def check_env(schema: ConfigSchema, names: Iterable[str] | Mapping[str, Any]) -> list[str]:
    """Problems of every EMQX_* name (a mapping's keys, or names; other names are ignored).

    Accepts a compose ``environment`` as a mapping or as a list of ``NAME=value`` strings.
    """
    problems = []
    for item in names:
        name = str(item).split("=", 1)[0]
        if name.startswith("EMQX_"):
            problem = check_env_var(schema, name)
            if problem:
                problems.append(problem)
    return problems


def _hidden_allowed(path: str) -> bool:
    parts = path.split(".")
    for allowed in HIDDEN_ALLOWED:
        pattern = allowed.split(".")
        if len(pattern) == len(parts) and all(
            p in (FREE, q) for p, q in zip(pattern, parts, strict=True)
        ):
            return True
    return False


def is_example_exception(path: str) -> bool:
    return any(pattern.search(path) for pattern in EXAMPLE_EXCEPTIONS)
