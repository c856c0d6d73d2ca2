"""Optional smoke test of the built image: two containers as two EMQX nodes.

Skipped unless the image exists: build it first (README.md) or set EMQX_STANDIN_IMAGE.
Everything it creates is named emqxsi-test-* and removed afterwards.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.standins.emqx.emqx_standin.testing import mqtt_client, publish, subscribe, wait_for

IMAGE = os.environ.get("EMQX_STANDIN_IMAGE", "tinyml-lab/emqx-standin:5.8.9")
KEY = "ansible:Image-s3cret"
NODES = ("emqx-1.emqx.tinyml", "emqx-2.emqx.tinyml")


def docker(*args: str, check: bool = True) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {done.stderr}")
    return done.stdout.strip()


def image_present() -> bool:
    if shutil.which("docker") is None:
        return False
    return (
        subprocess.run(
            ["docker", "image", "inspect", IMAGE], capture_output=True, check=False
        ).returncode
        == 0
    )


pytestmark = pytest.mark.skipif(not image_present(), reason=f"image {IMAGE} not built")


@pytest.fixture(scope="module")
def containers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, int]]]:
    tag = secrets.token_hex(3)
    network = f"emqxsi-test-{tag}"
    secrets_dir = Path(tmp_path_factory.mktemp("secrets"))
    (secrets_dir / "keys").write_text(KEY + "\n", encoding="utf-8")
    (secrets_dir / "emqx_cookie").write_text("image-cookie\n", encoding="utf-8")
    (secrets_dir / "emqx_dashboard_password").write_text("Dash-pass1\n", encoding="utf-8")
    for path in secrets_dir.iterdir():
        path.chmod(0o644)
    secrets_dir.chmod(0o755)
    docker("network", "create", network)
    names = [f"emqxsi-test-{tag}-{i}" for i in (1, 2)]
    wrapper = (
        'export EMQX_NODE__COOKIE="$(cat /run/secrets/emqx_cookie)" '
        'EMQX_DASHBOARD__DEFAULT_PASSWORD="$(cat /run/secrets/emqx_dashboard_password)"; '
        "exec /usr/bin/docker-entrypoint.sh /opt/emqx/bin/emqx foreground"
    )
    ports: dict[str, dict[str, int]] = {}
    try:
        for name, fqdn in zip(names, NODES, strict=True):
            docker(
                "run",
                "-d",
                "--name",
                name,
                "--network",
                network,
                "--network-alias",
                fqdn,
                "-p",
                "127.0.0.1::18083",
                "-p",
                "127.0.0.1::1883",
                "-v",
                f"{secrets_dir}:/run/secrets:ro",
                "-e",
                f"EMQX_NODE__NAME=emqx@{fqdn}",
                "-e",
                "EMQX_CLUSTER__DISCOVERY_STRATEGY=static",
                "-e",
                "EMQX_CLUSTER__STATIC__SEEDS=" + json.dumps([f"emqx@{n}" for n in NODES]),
                "-e",
                "EMQX_API_KEY__BOOTSTRAP_FILE=/run/secrets/keys",
                "-e",
                "EMQX_AUTHENTICATION=[{mechanism=password_based, "
                "backend=built_in_database, user_id_type=username}]",
                "-e",
                "EMQX_AUTHORIZATION__NO_MATCH=deny",
                "-e",
                "EMQX_AUTHORIZATION__SOURCES=[{type=built_in_database, enable=true}]",
                "-e",
                "EMQX_LISTENERS__WS__DEFAULT__ENABLE=false",
                "-e",
                "EMQX_LISTENERS__WSS__DEFAULT__ENABLE=false",
                "-e",
                "STANDIN_SPEC_STRICT=1",
                "--entrypoint",
                "sh",
                IMAGE,
                "-c",
                wrapper,
            )
            ports[name] = {
                "api": int(docker("port", name, "18083").rsplit(":", 1)[1]),
                "mqtt": int(docker("port", name, "1883").rsplit(":", 1)[1]),
            }
        for name in names:
            assert wait_for(
                lambda n=name: docker(
                    "exec", n, "/opt/emqx/bin/emqx", "ctl", "status", check=False
                ).endswith("is started"),
                timeout=60,
                interval=1,
            ), docker("logs", name, check=False)
        yield ports
    finally:
        for name in names:
            docker("rm", "-f", "-v", name, check=False)
        docker("network", "rm", network, check=False)


def api(port: int, method: str, path: str, body: object = None) -> tuple[int, Any]:
    headers = {"Authorization": "Basic " + base64.b64encode(KEY.encode()).decode()}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v5{path}", data=data, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, None


def test_two_containers_form_one_emqx_cluster(containers: dict[str, dict[str, int]]) -> None:
    (one, two) = containers.values()
    status, nodes = api(one["api"], "GET", "/nodes")
    assert status == 200
    assert sorted((n["node"], n["node_status"]) for n in nodes) == [
        (f"emqx@{NODES[0]}", "running"),
        (f"emqx@{NODES[1]}", "running"),
    ]
    users = "/authentication/password_based%3Abuilt_in_database/users"
    assert api(one["api"], "POST", users, {"user_id": "dev", "password": "pw"})[0] == 201
    rules = [
        {"username": "dev", "rules": [{"topic": "t/dev/#", "permission": "allow", "action": "all"}]}
    ]
    assert (
        api(one["api"], "POST", "/authorization/sources/built_in_database/rules/users", rules)[0]
        == 204
    )
    subscriber, rc = mqtt_client(two["mqtt"], "dev", "pw", client_id="sub")
    assert rc == 0
    subscribe(subscriber, "t/dev/#")
    publisher, rc = mqtt_client(one["mqtt"], "dev", "pw", client_id="pub")
    assert publish(publisher, "t/dev/x", "across") == 0
    assert wait_for(lambda: len(subscriber.messages) == 1)
    for client in (subscriber, publisher):
        client.loop_stop()
