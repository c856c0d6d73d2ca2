"""Render a role's templates in-process the way Ansible does, for static checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar, trust_as_template
from jsonschema import Draft4Validator

from tests.conftest import REPO_ROOT

init_plugin_loader()


def trusted(value: Any) -> Any:
    """Mark strings as templates, as Ansible does with the files it loads itself."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {key: trusted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [trusted(item) for item in value]
    return value


def role_variables(role: str) -> dict[str, Any]:
    """The role's defaults and vars, as templates."""
    variables: dict[str, Any] = {}
    for name in ("defaults", "vars"):
        path = REPO_ROOT / "roles" / role / name / "main.yml"
        if path.exists():
            variables.update(trusted(yaml.safe_load(path.read_text()) or {}))
    return variables


def render(role: str, template: str, overrides: dict[str, Any]) -> Any:
    """roles/<role>/templates/<template> rendered with the role's variables and overrides,
    parsed as YAML."""
    variables = {**role_variables(role), **overrides}
    source = (REPO_ROOT / "roles" / role / "templates" / template).read_text()
    text = Templar(loader=DataLoader(), variables=variables).template(trust_as_template(source))
    return yaml.safe_load(text)


def stack_schema_errors(stack: dict[str, Any]) -> list[str]:
    """Errors of a stack file against Docker 20.10's compose 3.9 schema."""
    schema = json.loads(
        (REPO_ROOT / "specs" / "docker-cli-20.10.24-config_schema_v3.9.json").read_text()
    )
    return [error.message for error in Draft4Validator(schema).iter_errors(stack)]


def repo_path(*parts: str) -> Path:
    return REPO_ROOT.joinpath(*parts)
