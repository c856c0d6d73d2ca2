"""Every module's documentation as ansible-doc reads it (doc fragments resolved): it loads,
documents the options the module takes, and its EXAMPLES and RETURN are YAML."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import MODULE_DIRS, ansible_doc

MODULES = sorted(path.stem for d in MODULE_DIRS for path in d.glob("*.py"))
CONNECTION = {
    "emqx_": {"api_url", "api_key", "api_secret"},
    "tb_": {"url", "username", "password", "validate_certs", "timeout"},
}
FLEET = {"retries", "token"}


@pytest.mark.parametrize("name", MODULES)
def test_ansible_doc_reads_the_module(name: str) -> None:
    entry = ansible_doc(name)
    doc = entry["doc"]
    assert doc["module"] == name
    assert doc["short_description"]
    for prefix, options in CONNECTION.items():
        if name.startswith(prefix) and name != "emqx_mqtt_probe":
            assert options <= set(doc["options"]), name
    if "token" in doc["options"]:
        assert set(doc["options"]) >= FLEET
    assert yaml.safe_load(entry["examples"])
    assert entry["return"]
