"""The versioned JSON schemas shipped in tinyml_sim/schema/ (payloads, devices file, cards)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA_VERSION = 1


@cache
def validator(name: str) -> Draft202012Validator:
    text = resources.files("tinyml_sim.schema").joinpath(f"{name}.v{SCHEMA_VERSION}.json")
    schema = json.loads(text.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def validate(name: str, doc: Any) -> None:
    """Raise jsonschema.ValidationError when `doc` breaks schema `name`."""
    validator(name).validate(doc)
