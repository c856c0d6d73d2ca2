"""Docker Engine installed by the role on a bare VM, configured from the inventory."""

from __future__ import annotations

import json
from typing import Any

from testinfra.host import Host


def inventory_vars(host: Host) -> dict[str, Any]:
    variables: dict[str, Any] = host.ansible.get_variables()
    return variables


def test_engine_is_enabled_and_running(host: Host) -> None:
    service = host.service("docker")
    assert service.is_enabled
    assert service.is_running


def test_engine_uses_overlay2(host: Host) -> None:
    assert host.check_output("docker info --format '{{.Driver}}'") == "overlay2"


def test_python_libraries_for_the_docker_modules_are_installed(host: Host) -> None:
    for package in ("docker.io", "python3-docker", "python3-jsondiff", "python3-yaml"):
        assert host.package(package).is_installed, package


def test_daemon_json_comes_from_the_variables(host: Host) -> None:
    expected = inventory_vars(host)["docker_engine_insecure_registries"]
    config = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert config["insecure-registries"] == expected
    assert config["log-driver"] == "json-file"
    assert config["log-opts"] == {"max-size": "10m", "max-file": "3"}
    running = json.loads(host.check_output("docker info --format '{{json .RegistryConfig}}'"))
    assert set(expected) <= set(running["IndexConfigs"])


def test_pulls_from_the_insecure_lab_registry(host: Host) -> None:
    result = host.run("docker pull --quiet registry.lab:5000/lab/probe:latest")
    assert result.rc == 0, result.stderr
