"""Every role's variables are prefixed, typed in meta/argument_specs.yml and documented in
its README next to their default."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT

ROLES = sorted(p.parent.parent for p in (REPO_ROOT / "roles").glob("*/meta/argument_specs.yml"))


def role_ids() -> list[str]:
    return [role.name for role in ROLES]


def spec_options(role: Path) -> dict[str, Any]:
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    options: dict[str, Any] = {}
    for entry in specs.values():
        options.update(entry.get("options") or {})
    return options


def defaults(role: Path) -> dict[str, Any]:
    path = role / "defaults" / "main.yml"
    loaded: dict[str, Any] = yaml.safe_load(path.read_text()) if path.exists() else {}
    return loaded or {}


def test_every_role_directory_has_argument_specs() -> None:
    for role in (REPO_ROOT / "roles").iterdir():
        if role.is_dir():
            assert (role / "meta" / "argument_specs.yml").exists(), role.name


@pytest.mark.parametrize("role", ROLES, ids=role_ids())
def test_variables_carry_the_role_prefix(role: Path) -> None:
    prefix = f"{role.name}_"
    names = {*defaults(role), *spec_options(role)}
    strays = [name for name in names if not name.startswith(prefix)]
    assert strays == []


@pytest.mark.parametrize("role", ROLES, ids=role_ids())
def test_every_default_is_in_the_argument_spec(role: Path) -> None:
    assert set(defaults(role)) <= set(spec_options(role))


@pytest.mark.parametrize("role", ROLES, ids=role_ids())
def test_every_option_has_a_type_and_a_description(role: Path) -> None:
    for name, option in spec_options(role).items():
        assert option.get("type"), name
        assert option.get("description"), name


@pytest.mark.parametrize("role", ROLES, ids=role_ids())
def test_readme_documents_every_variable(role: Path) -> None:
    readme = role / "README.md"
    assert readme.exists()
    rows = [line for line in readme.read_text().splitlines() if line.startswith("| `")]
    documented = {line.split("`")[1] for line in rows}
    assert sorted(set(spec_options(role)) - documented) == []


def tasks(node: Any, hidden: bool = False) -> Iterator[tuple[dict[str, Any], bool]]:
    """Every task of a task file, blocks unfolded, with whether its result is hidden (its
    own no_log, or its block's)."""
    for task in node or []:
        task_hidden = bool(task.get("no_log", hidden))
        yield task, task_hidden
        for section in ("block", "rescue", "always"):
            yield from tasks(task.get(section), task_hidden)


TASK_FILES = sorted((REPO_ROOT / "roles").glob("*/tasks/*.yml"))


@pytest.mark.parametrize("path", TASK_FILES, ids=lambda p: f"{p.parts[-3]}/{p.name}")
def test_a_pushed_tag_always_moves_to_the_new_image(path: Path) -> None:
    """docker_image's `repository` keeps a tag that already exists, so a rebuilt image under a
    fixed tag (a substitute served as the vendor's version) would never reach the registry:
    tag with docker_image_tag, which overwrites, then push."""
    for task, _hidden in tasks(yaml.safe_load(path.read_text())):
        image = task.get("community.docker.docker_image") or {}
        assert "repository" not in image or image.get("force_tag"), task.get("name")
        tag = task.get("community.docker.docker_image_tag") or {}
        assert tag.get("existing_images", "overwrite") == "overwrite", task.get("name")


@pytest.mark.parametrize("path", TASK_FILES, ids=lambda p: f"{p.parts[-3]}/{p.name}")
def test_a_failure_message_is_never_hidden(path: Path) -> None:
    """no_log replaces a failed task's whole result, its message included: an operator would
    read "the output has been hidden" instead of what is wrong. An assert's or a fail's
    result holds its condition's text and its message, never the variables' values."""
    for task, hidden in tasks(yaml.safe_load(path.read_text())):
        check = task.get("ansible.builtin.assert") or {}
        message = check.get("fail_msg") or (task.get("ansible.builtin.fail") or {}).get("msg")
        assert not (message and hidden), task.get("name")
