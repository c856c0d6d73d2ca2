"""The modules' DOCUMENTATION, EXAMPLES and RETURN are YAML (ansible-doc reads them)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

LIBRARY = Path(__file__).resolve().parents[2] / "library"


@pytest.mark.parametrize("name", ["emqx_users", "emqx_acl", "emqx_cluster_info"])
def test_docs_are_yaml(name: str) -> None:
    tree = ast.parse((LIBRARY / f"{name}.py").read_text(encoding="utf-8"))
    docs = {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    }
    documentation = yaml.safe_load(docs["DOCUMENTATION"])
    assert documentation["module"] == name
    assert {"api_url", "api_key", "api_secret"} <= set(documentation["options"])
    assert yaml.safe_load(docs["EXAMPLES"])
    assert yaml.safe_load(docs["RETURN"])
