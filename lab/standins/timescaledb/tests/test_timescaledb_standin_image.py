"""Smoke test of the image the lab serves as TimescaleDB: the official image's contract.

Skipped unless the image exists locally: `playbooks/lab.yml` leaves it tagged as
127.0.0.1:5000/lab/timescaledb:<tag>, or build it (README.md) and set TIMESCALEDB_IMAGE.
Whatever the lab serves (this stand-in or the vendor image) must pass. Everything it creates
is named tsdbsi-test-* and removed afterwards, volumes included.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

IMAGE = os.environ.get("TIMESCALEDB_IMAGE", "127.0.0.1:5000/lab/timescaledb:2.29.2-pg16")
PASSWORD = "Stand-in-s3cret"


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {done.stderr}")
    return done


def image_present() -> bool:
    if shutil.which("docker") is None:
        return False
    return docker("image", "inspect", IMAGE, check=False).returncode == 0


pytestmark = pytest.mark.skipif(not image_present(), reason=f"image {IMAGE} not built")


def wait_ready(name: str) -> None:
    for _ in range(60):
        ready = docker("exec", name, "pg_isready", "-q", "-h", "127.0.0.1", check=False)
        if ready.returncode == 0:
            return
        time.sleep(1)
    raise AssertionError(docker("logs", name, check=False).stderr[-3000:])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    tag = secrets.token_hex(3)
    network, name = f"tsdbsi-test-{tag}", f"tsdbsi-test-{tag}-db"
    files = Path(tmp_path_factory.mktemp("secrets"))
    (files / "password").write_text(PASSWORD + "\n")
    (files / "10-probe.sql").write_text(
        "CREATE TABLE probe (x int); INSERT INTO probe VALUES (42);\n"
    )
    for path in (files, *files.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    docker("network", "create", network)
    try:
        docker(
            "run", "--detach", "--name", name, "--network", network,
            "--volume", f"{files / 'password'}:/run/secrets/password:ro",
            "--volume", f"{files / '10-probe.sql'}:/docker-entrypoint-initdb.d/10-probe.sql:ro",
            "--env", "POSTGRES_PASSWORD_FILE=/run/secrets/password",
            "--env", "POSTGRES_DB=fleet",
            "--env", "TS_TUNE_MEMORY=512MB",
            IMAGE, "postgres", "-c", "shared_buffers=48MB", "-c", "max_connections=42",
        )  # fmt: skip
        wait_ready(name)
        yield {"name": name, "network": network}
    finally:
        docker("rm", "--force", "--volumes", name, check=False)
        docker("network", "rm", network, check=False)


def client(
    server: dict[str, str], password: str, sql: str, database: str = "fleet"
) -> subprocess.CompletedProcess[str]:
    """psql from another container, over the network (scram-sha-256)."""
    return docker(
        "run", "--rm", "--network", server["network"], "--env", f"PGPASSWORD={password}",
        IMAGE, "psql", "-X", "-A", "-t", "-h", server["name"], "-U", "postgres", "-d", database,
        "-c", sql,
        check=False,
    )  # fmt: skip


def test_settings_come_from_the_command(server: dict[str, str]) -> None:
    shown = docker(
        "exec", server["name"], "psql", "-X", "-A", "-t", "-U", "postgres",
        "-c", "SHOW shared_buffers", "-c", "SHOW max_connections", "-c", "SHOW listen_addresses",
    ).stdout.split()  # fmt: skip
    assert shown == ["48MB", "42", "*"]


def test_password_file_and_database_and_init_scripts(server: dict[str, str]) -> None:
    done = client(server, PASSWORD, "SELECT x FROM probe")
    assert done.stdout.strip() == "42", done.stderr


def test_network_logins_need_the_password(server: dict[str, str]) -> None:
    for wrong in ("postgres", "password", ""):
        refused = client(server, wrong, "SELECT 1")
        assert refused.returncode != 0
    hba = docker("exec", server["name"], "sh", "-c", 'grep -v "^#" "$PGDATA/pg_hba.conf"').stdout
    assert "host all all all scram-sha-256" in hba


def test_restart_keeps_the_data_and_skips_initialisation(server: dict[str, str]) -> None:
    docker("restart", server["name"])
    wait_ready(server["name"])
    assert client(server, PASSWORD, "SELECT x FROM probe").stdout.strip() == "42"


def test_other_commands_run_as_given() -> None:
    done = docker("run", "--rm", IMAGE, "pg_dump", "--version")
    assert done.stdout.startswith("pg_dump (PostgreSQL)")


def test_no_password_no_start() -> None:
    name = f"tsdbsi-test-{secrets.token_hex(3)}-nopw"
    try:
        docker("run", "--name", name, IMAGE, check=False)
        state = docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        assert state != "0"
        assert "superuser password is not specified" in docker("logs", name).stderr
    finally:
        docker("rm", "--force", "--volumes", name, check=False)
