from __future__ import annotations

import base64
import hashlib

from tests.conftest import load_source

swarm_objects = load_source("plugins/filter/swarm_objects.py")


def test_names_carry_stack_logical_name_and_content_digest() -> None:
    names = swarm_objects.swarm_object_names({"cookie": "abc", "api_key": "k:s"}, "emqx")
    assert names["cookie"].startswith("emqx_cookie_")
    assert len(names["cookie"].rsplit("_", 1)[1]) == 12
    assert names["api_key"].startswith("emqx_api_key_")


def test_name_changes_exactly_when_content_changes() -> None:
    swarm_object_names = swarm_objects.swarm_object_names
    first = swarm_object_names({"cookie": "abc"}, "emqx")
    assert swarm_object_names({"cookie": "abc"}, "emqx") == first
    assert swarm_object_names({"cookie": "abd"}, "emqx") != first


def test_external_objects_section() -> None:
    section = swarm_objects.swarm_external_objects({"cookie": "emqx_cookie_0123456789ab"})
    assert section == {"cookie": {"external": True, "name": "emqx_cookie_0123456789ab"}}


def test_unconverged_services_are_the_ones_short_of_their_replicas() -> None:
    lines = [
        "emqx_node1 replicated 1/1",
        "emqx_node2 replicated 0/1",
        "sim_lab-vm2 replicated 1/2 (max 1 per node)",
        "agent global 2/3",
        "install replicated-job 0/1 (1/1 completed)",
    ]
    pending = swarm_objects.unconverged_services(lines)
    assert pending == ["emqx_node2", "sim_lab-vm2", "agent"]


def test_binary_content_is_named_by_the_digest_of_its_bytes() -> None:
    model = bytes(range(256)) * 4
    names = swarm_objects.swarm_object_names(
        {"model": {"b64": base64.b64encode(model).decode()}}, "fleet"
    )
    assert names["model"] == "fleet_model_" + hashlib.sha256(model).hexdigest()[:12]
