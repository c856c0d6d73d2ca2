"""Fixtures: a throw-away PostgreSQL, mosquitto as the "external EMQX", the stand-in process."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

REPO = Path(__file__).resolve().parents[4]
PG_BIN = Path("/usr/lib/postgresql/15/bin")
SYSADMIN_PASSWORD = "Sysadmin-Changed-1"


def free_ports(count: int) -> list[int]:
    """Distinct free ports: the sockets stay bound until all are chosen."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def free_port() -> int:
    return free_ports(1)[0]


def wait_until(check: Any, timeout: float, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


@dataclass
class Postgres:
    port: int

    def jdbc(self, db: str) -> str:
        return f"jdbc:postgresql://127.0.0.1:{self.port}/{db}"

    def createdb(self, name: str) -> None:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(PG_BIN / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-qc",
                f"CREATE DATABASE {name}",
            ],
            check=True,
        )


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    # PostgreSQL refuses to run as root: the cluster belongs to the postgres user.
    base = Path(tempfile.mkdtemp(prefix="tbsi-pg-"))
    base.chmod(0o755)
    data = base / "data"
    data.mkdir()
    shutil.chown(data, "postgres", "postgres")
    port = free_port()
    as_pg = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_pg, str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    subprocess.run(
        [
            *as_pg,
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-w",
            "-l",
            str(data / "log"),
            "-o",
            f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    pg = Postgres(port)
    try:
        yield pg
    finally:
        subprocess.run(
            [*as_pg, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            check=False,
            stdout=subprocess.DEVNULL,
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[int]:
    port = free_port()
    conf = Path(tempfile.mkdtemp(prefix="tbsi-mq-")) / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    proc = subprocess.Popen(
        ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_until(lambda: _port_open(port), 10)
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(conf.parent, ignore_errors=True)


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


def standin_env(pg: Postgres, db: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STANDIN_", "INSTALL_TB"))}
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "SPRING_DATASOURCE_URL": pg.jdbc(db),
            "SPRING_DATASOURCE_USERNAME": "postgres",
            "SPRING_DATASOURCE_PASSWORD": "unused-with-trust-auth",
            "DATABASE_TS_TYPE": "sql",
            "TB_QUEUE_TYPE": "in-memory",
            "JAVA_OPTS": "-Xmx1G",
        }
    )
    env.update(extra)
    return env


def run_standin(env: dict[str, str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lab.standins.thingsboard"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        **kwargs,
    )


@dataclass
class StandIn:
    url: str
    mqtt_port: int
    log: Path

    def violations(self) -> list[dict[str, Any]]:
        return list(requests.get(self.url + "/_standin/violations", timeout=5).json())


@pytest.fixture(scope="session")
def standin(postgres: Postgres) -> Iterator[StandIn]:
    postgres.createdb("thingsboard")
    http, mqtt = free_ports(2)
    env = standin_env(
        postgres,
        "thingsboard",
        HTTP_BIND_PORT=str(http),
        MQTT_BIND_PORT=str(mqtt),
        STANDIN_SPEC_STRICT="1",
        DEFAULT_STATE_CHECK_INTERVAL="1",
        STANDIN_LOG_LEVEL="INFO",
    )
    installed = run_standin({**env, "INSTALL_TB": "true", "LOAD_DEMO": "true"})
    assert installed.returncode == 0, installed.stderr
    log = Path(tempfile.mkdtemp(prefix="tbsi-log-")) / "standin.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lab.standins.thingsboard"],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{http}"
    try:
        wait_until(lambda: _login_page(url) or proc.poll() is not None, 30)
        assert proc.poll() is None, log.read_text()
        yield StandIn(url, mqtt, log)
    finally:
        proc.terminate()
        proc.wait(20)
        sys.stderr.write(log.read_text()[-20000:])


def _login_page(url: str) -> bool:
    with contextlib.suppress(requests.RequestException):
        return requests.get(url + "/login", timeout=1).status_code == 200
    return False


class Api:
    """A thin REST client that raises on errors, like the lead's Ansible uri calls."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        self.token = token

    def _headers(self) -> dict[str, str]:
        return {"X-Authorization": f"Bearer {self.token}"} if self.token else {}

    def request(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        response = requests.request(
            method, self.url + path, headers=self._headers(), timeout=60, **kwargs
        )
        assert response.status_code == expect, (
            method,
            path,
            response.status_code,
            response.text[:2000],
        )
        if "json" in response.headers.get("Content-Type", "") and response.content:
            return response.json()
        return response.text

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    @classmethod
    def login(cls, url: str, username: str, password: str) -> Api:
        api = cls(url)
        api.token = api.post("/api/auth/login", json={"username": username, "password": password})[
            "token"
        ]
        return api


@pytest.fixture(scope="session")
def sysadmin(standin: StandIn) -> Api:
    """The role's first step: replace the default system administrator password."""
    api = Api.login(standin.url, "sysadmin@thingsboard.org", "sysadmin")
    pair = api.post(
        "/api/auth/changePassword",
        json={"currentPassword": "sysadmin", "newPassword": SYSADMIN_PASSWORD},
    )
    api.token = pair["token"]
    return api


@pytest.fixture(scope="session")
def tenant_admin(standin: StandIn, sysadmin: Api) -> Api:
    """A tenant and its administrator, activated without mail as the role does it."""
    tenant = sysadmin.post("/api/tenant", json={"title": "TinyML"})
    user = sysadmin.post(
        "/api/user",
        params={"sendActivationMail": "false"},
        json={
            "email": "ops@tinyml.lab",
            "authority": "TENANT_ADMIN",
            "tenantId": tenant["id"],
            "firstName": "Ops",
        },
    )
    link = sysadmin.get(f"/api/user/{user['id']['id']}/activationLink")
    token = link.split("activateToken=")[1]
    pair = Api(standin.url).post(
        "/api/noauth/activate", json={"activateToken": token, "password": "Tenant-Pass-1"}
    )
    return Api(standin.url, pair["token"])


@pytest.fixture(autouse=True)
def no_spec_violations(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every REST request a test makes must conform to the vendor spec."""
    yield
    if "standin" in request.fixturenames:
        found = request.getfixturevalue("standin").violations()
        assert found == [], found
