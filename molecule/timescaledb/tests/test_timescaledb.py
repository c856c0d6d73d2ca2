"""TimescaleDB on the swarm (the lab's stand-in: real PostgreSQL, no TimescaleDB extension).

Placement, tuning, least privilege over the overlay network from another node, the
generated superuser password, the extension check, and backup/restore of 100,000 rows with
retention and refusals that change nothing. The scenario runs its idempotence step after
these tests, so the re-run that must change nothing runs on the restored database.
(tests/timescaledb/ checks every refusal of restore-db.yml without VMs.)

Commands reach the lab VMs with `docker exec <vm>` (the VMs are containers of this machine's
engine), which is much faster than a connection per command.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from testinfra.host import Host

SCENARIO = Path(__file__).resolve().parents[1]
REPO_ROOT = SCENARIO.parents[1]
sys.path.insert(0, str(REPO_ROOT))  # for the repository's own test helpers
from tests.lab_helpers import changed, playbook, run, vm  # noqa: E402

INVENTORY = SCENARIO / "inventory"
CREDENTIALS = INVENTORY / "credentials" / "timescaledb"
SERVICE = "timescaledb_timescaledb"
VOLUME = "timescaledb_data"
ROWS = 100_000
# Measured times, kept for the record (git-ignored).
FIGURES = SCENARIO / ".cache"

SEED_SQL = f"""
DROP TABLE IF EXISTS inference;
CREATE TABLE inference (
    id bigint PRIMARY KEY,
    device text NOT NULL,
    ts timestamptz NOT NULL,
    class text NOT NULL,
    score double precision NOT NULL,
    payload jsonb NOT NULL
);
INSERT INTO inference
SELECT g,
       'mol-tsdb-2-vibration-' || lpad((g % 500 + 1)::text, 5, '0'),
       timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second',
       (ARRAY['normal', 'imbalance', 'bearing'])[1 + g % 3],
       (g % 1000) / 1000.0,
       jsonb_build_object('schema', 1, 'model', 'vib-cnn', 'model_version', '1.0.' || (g % 7))
FROM generate_series(1, {ROWS}) AS g;
"""
DIGEST_SQL = "SELECT count(*), md5(string_agg(i::text, ',' ORDER BY id)) FROM inference AS i"


# ---------------------------------------------------------------------------- helpers


def ansible_playbook(*args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """A run and how long it took."""
    started = time.monotonic()
    done = playbook(INVENTORY, *args, timeout=900)
    return done, time.monotonic() - started


def delta_seconds(output: str, marker: str) -> float:
    """Seconds from a "<marker> took H:MM:SS.ffffff" in a task's message."""
    found = re.search(marker + r"\s+took\s+(\d+):(\d+):(\d+(?:\.\d+)?)", output)
    assert found, f"no {marker!r} timing in the output"
    hours, minutes, seconds = found.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def record(figure: str, value: Any) -> None:
    FIGURES.mkdir(exist_ok=True)
    path = FIGURES / "figures.json"
    figures = json.loads(path.read_text()) if path.exists() else {}
    figures[figure] = value
    path.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    print(f"FIGURE {figure} = {value}")


# ---------------------------------------------------------------------------- the lab


class Lab:
    """The scenario's inventory and what runs in it."""

    def __init__(self) -> None:
        listing = json.loads(run("ansible-inventory", "-i", str(INVENTORY), "--list").stdout)
        self.hostvars: dict[str, dict[str, Any]] = listing["_meta"]["hostvars"]
        self.db_host: str = listing["timescaledb"]["hosts"][0]
        self.manager: str = listing["swarm_managers"]["hosts"][0]
        self.client: str = next(name for name in sorted(self.hostvars) if name != self.db_host)
        variables = self.hostvars[self.db_host]
        self.image: str = variables["timescaledb_image"]
        self.network: str = variables["swarm_networks"][0]["name"]
        self.memory_mb = int(variables["timescaledb_memory_mb"])
        self._client = ""

    def container(self) -> str:
        ids = vm(
            self.db_host,
            "docker",
            "ps",
            "--quiet",
            "--no-trunc",
            "--filter",
            f"label=com.docker.swarm.service.name={SERVICE}",
        ).stdout.split()
        assert len(ids) == 1, ids
        return ids[0]

    def psql(self, sql: str, user: str = "postgres", database: str = "postgres") -> str:
        """SQL through the container's local socket (trusted inside the container)."""
        return vm(
            self.db_host,
            "docker",
            "exec",
            "--interactive",
            self.container(),
            "psql",
            "-X",
            "-A",
            "-t",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-U",
            user,
            "-d",
            database,
            "-c",
            sql,
        ).stdout.strip()

    def psql_from_client(
        self,
        user: str,
        password: str,
        *sql: str,
        database: str = "postgres",
        address: str = "timescaledb",
    ) -> subprocess.CompletedProcess[str]:
        """SQL from a client container on the overlay network, on the other node."""
        commands = [arg for statement in sql for arg in ("-c", statement)]
        return vm(
            self.client,
            "docker",
            "exec",
            "-e",
            f"PGPASSWORD={password}",
            "-e",
            "PGCONNECT_TIMEOUT=10",
            self.client_container(),
            "psql",
            "-X",
            "-A",
            "-t",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            address,
            "-U",
            user,
            "-d",
            database,
            *commands,
            check=False,
        )

    def client_container(self) -> str:
        """One container of the database image (for its psql) on the overlay network, on the
        other node; started on first use, removed by the `lab` fixture."""
        if not self._client:
            self._client = f"mol-tsdb-client-{os.getpid()}"
            vm(
                self.client,
                "docker",
                "run",
                "--detach",
                "--name",
                self._client,
                "--network",
                self.network,
                "--entrypoint",
                "sleep",
                self.image,
                "infinity",
            )
        return self._client

    def close(self) -> None:
        if self._client:
            vm(self.client, "docker", "rm", "--force", self._client, check=False)
            self._client = ""

    def digest(self) -> tuple[int, str]:
        count, checksum = self.psql(DIGEST_SQL, user="thingsboard", database="thingsboard").split(
            "|"
        )
        return int(count), checksum

    def state(self) -> dict[str, Any]:
        """What a refused restore must leave untouched."""
        container = self.container()
        started = vm(
            self.db_host, "docker", "inspect", "--format", "{{.State.StartedAt}}", container
        ).stdout.strip()
        version = vm(
            self.manager, "docker", "service", "inspect", "--format", "{{.Version.Index}}", SERVICE
        ).stdout.strip()
        volume = vm(
            self.db_host, "docker", "volume", "inspect", "--format", "{{.CreatedAt}}", VOLUME
        ).stdout.strip()
        return {
            "container": container,
            "started": started,
            "service_version": version,
            "volume_created": volume,
            "digest": self.digest(),
        }


def password(name: str) -> str:
    return (CREDENTIALS / name).read_text().strip()


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    the_lab = Lab()
    yield the_lab
    the_lab.close()


@pytest.fixture
def once(host: Host, lab: Lab) -> Lab:
    """Cluster-wide checks run once (testinfra parametrizes every test by host)."""
    if host.backend.get_hostname() != lab.db_host:
        pytest.skip("cluster-wide check, run once")
    return lab


@pytest.fixture(scope="module")
def seeded(lab: Lab) -> tuple[int, str]:
    """100,000 inference rows in ThingsBoard's database, written as its own user."""
    lab.psql(SEED_SQL, user="thingsboard", database="thingsboard")
    digest = lab.digest()
    assert digest[0] == ROWS
    return digest


@pytest.fixture(scope="module")
def backup(
    lab: Lab, seeded: tuple[int, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """One run of playbooks/backup-db.yml into a fresh directory that already holds two
    older backups and a foreign file, keeping 2."""
    directory = tmp_path_factory.mktemp("backups")
    for stamp in ("20200101T000000Z", "20200102T000000Z"):
        (directory / f"thingsboard-{stamp}.dump").write_bytes(b"PGDMP old backup")
        (directory / f"thingsboard-{stamp}.dump.sha256").write_text("0  old\n")
    (directory / "notes.txt").write_text("not a backup\n")
    done, seconds = ansible_playbook(
        "playbooks/backup-db.yml",
        "-e",
        f"timescaledb_backup_dir={directory}",
        "-e",
        "timescaledb_backup_keep=2",
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    dumps = sorted(p.name for p in directory.glob("thingsboard-*.dump"))
    record("backup_playbook_seconds", round(seconds, 1))
    record("pg_dump_seconds", delta_seconds(done.stdout, "pg_dump"))
    yield {"dir": directory, "dumps": dumps, "output": done.stdout}
    shutil.rmtree(directory, ignore_errors=True)


# ---------------------------------------------------------------------------- placement


def test_service_runs_on_the_labelled_host_only(once: Lab) -> None:
    lab = once
    nodes = vm(
        lab.manager,
        "docker",
        "service",
        "ps",
        SERVICE,
        "--filter",
        "desired-state=running",
        "--format",
        "{{.Node}}",
    ).stdout.split()
    assert nodes == [lab.db_host]
    spec = json.loads(vm(lab.manager, "docker", "service", "inspect", SERVICE).stdout)[0]["Spec"]
    assert spec["TaskTemplate"]["Placement"]["Constraints"] == [
        f"node.labels.tinyml.host == {lab.db_host}"
    ]
    assert spec["EndpointSpec"]["Mode"] == "dnsrr"
    assert not spec["EndpointSpec"].get("Ports"), "the port must not be published"
    assert spec["Mode"]["Replicated"]["Replicas"] == 1
    others = vm(
        lab.client,
        "docker",
        "ps",
        "--quiet",
        "--filter",
        f"label=com.docker.swarm.service.name={SERVICE}",
    ).stdout.split()
    assert others == []


def test_settings_derive_from_the_memory_given(once: Lab) -> None:
    lab = once
    shown = lab.psql(
        "SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ' ' ORDER BY name)"
        " FROM pg_settings WHERE name IN ('shared_buffers', 'effective_cache_size',"
        " 'work_mem', 'maintenance_work_mem', 'max_connections')"
    )
    settings = dict(item.split("=") for item in shown.split())
    # pg_settings reports 8 kB pages for the buffers and the cache size.
    assert int(settings["shared_buffers"].removesuffix("8kB")) * 8 == lab.memory_mb * 1024 // 4
    assert (
        int(settings["effective_cache_size"].removesuffix("8kB")) * 8
        == lab.memory_mb * 1024 * 3 // 4
    )
    assert int(settings["max_connections"]) == 100
    work_mem_kb = int(settings["work_mem"].removesuffix("kB"))
    assert 64 <= work_mem_kb <= lab.memory_mb * 1024 * 3 // 4 // 100
    shm = vm(lab.db_host, "docker", "exec", lab.container(), "df", "-k", "/dev/shm").stdout
    assert shm.split()[-5] == str(256 * 1024), shm


# ---------------------------------------------------------------------------- credentials


def test_application_role_connects_over_the_overlay_and_has_least_privilege(once: Lab) -> None:
    lab = once
    app = password("app_password")
    done = lab.psql_from_client(
        "thingsboard",
        app,
        "SELECT current_user, current_database()",
        "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls"
        " FROM pg_roles WHERE rolname = current_user",
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()",
        database="thingsboard",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["thingsboard|thingsboard", "f|f|f|f|f", "thingsboard"]
    # The full service name resolves too.
    by_service = lab.psql_from_client(
        "thingsboard", app, "SELECT 1", database="thingsboard", address=SERVICE
    )
    assert by_service.stdout.strip() == "1", by_service.stderr

    # Both statements run (no ON_ERROR_STOP) and both are refused.
    refused = lab.psql_from_client(
        "thingsboard",
        app,
        "\\set ON_ERROR_STOP 0",
        "CREATE DATABASE mol_tsdb_probe",
        "CREATE ROLE mol_tsdb_probe",
        database="thingsboard",
    )
    assert "permission denied to create database" in refused.stderr, refused.stderr
    assert "permission denied to create role" in refused.stderr, refused.stderr
    wrong = lab.psql_from_client("thingsboard", "thingsboard", "SELECT 1", database="thingsboard")
    assert "password authentication failed" in wrong.stderr


def test_superuser_password_is_generated_and_no_default_opens_it(once: Lab) -> None:
    lab = once
    path = CREDENTIALS / "superuser_password"
    superuser = password("superuser_password")
    assert path.stat().st_mode & 0o777 == 0o600
    assert re.fullmatch(r"[A-Za-z0-9]{32}", superuser)
    for default in ("postgres", "password"):
        refused = lab.psql_from_client("postgres", default, "SELECT 1")
        assert refused.returncode != 0
        assert "password authentication failed" in refused.stderr, refused.stderr
    accepted = lab.psql_from_client(
        "postgres", superuser, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
    )
    assert accepted.stdout.strip() == "t", accepted.stderr
    # The password reaches the service only as a secret file.
    spec = json.loads(vm(lab.manager, "docker", "service", "inspect", SERVICE).stdout)[0]["Spec"]
    container = spec["TaskTemplate"]["ContainerSpec"]
    assert "POSTGRES_PASSWORD_FILE=/run/secrets/superuser_password" in container["Env"]
    assert not any(env.startswith("POSTGRES_PASSWORD=") for env in container["Env"])
    assert superuser not in json.dumps(spec)
    assert [s["File"]["Name"] for s in container["Secrets"]] == ["superuser_password"]


def test_a_missing_extension_fails_loudly_when_required(once: Lab, tmp_path: Path) -> None:
    """The lab's stand-in has no timescaledb extension: with the production default
    (timescaledb_require_extension: true) the role's database step refuses it."""
    playbook = tmp_path / "require-extension.yml"
    playbook.write_text(
        "- hosts: timescaledb\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - ansible.builtin.include_role: {name: timescaledb, tasks_from: container.yml}\n"
        "    - ansible.builtin.include_role: {name: timescaledb, tasks_from: database.yml}\n"
    )
    done, _ = ansible_playbook(str(playbook), "-e", '{"timescaledb_require_extension": true}')
    assert done.returncode != 0
    assert "has no timescaledb extension" in done.stdout + done.stderr
    assert changed(done.stdout) == 0


# ---------------------------------------------------------------------------- backup


def test_backup_is_timestamped_verified_and_keeps_the_newest(
    once: Lab, backup: dict[str, Any]
) -> None:
    directory: Path = backup["dir"]
    dumps: list[str] = backup["dumps"]
    assert len(dumps) == 2, dumps
    assert dumps[0] == "thingsboard-20200102T000000Z.dump"
    assert re.fullmatch(r"thingsboard-\d{8}T\d{6}Z\.dump", dumps[1])
    assert not (directory / "thingsboard-20200101T000000Z.dump.sha256").exists()
    assert (directory / "notes.txt").exists(), "files of other kinds are left alone"
    newest = directory / dumps[1]
    assert newest.read_bytes()[:5] == b"PGDMP"
    assert newest.stat().st_mode & 0o777 == 0o600
    check = subprocess.run(
        ["sha256sum", "--check", f"{newest.name}.sha256"],
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    record("backup_bytes", newest.stat().st_size)


# ---------------------------------------------------------------------------- restore


def test_restore_refuses_a_wrong_confirmation_or_a_missing_file_and_changes_nothing(
    once: Lab, backup: dict[str, Any]
) -> None:
    lab = once
    directory: Path = backup["dir"]
    newest = backup["dumps"][-1]
    before = lab.state()
    cases = [
        (
            ["-e", f"restore_file={newest}", "-e", "restore_confirm=yes"],
            "confirm with -e restore_confirm=thingsboard (got 'yes')",
        ),
        (
            [
                "-e",
                "restore_file=thingsboard-19990101T000000Z.dump",
                "-e",
                "restore_confirm=thingsboard",
            ],
            "thingsboard-19990101T000000Z.dump does not exist",
        ),
    ]
    for extra, message in cases:
        done, _ = ansible_playbook(
            "playbooks/restore-db.yml", "-e", f"timescaledb_backup_dir={directory}", *extra
        )
        output = " ".join((done.stdout + done.stderr).split())
        assert done.returncode != 0, extra
        assert "nothing restored" in output, output[-3000:]
        assert message in output, (message, output[-3000:])
        assert changed(done.stdout) == 0, extra
    assert lab.state() == before


def test_backup_survives_losing_the_service_and_its_volume(
    once: Lab, seeded: tuple[int, str], backup: dict[str, Any]
) -> None:
    lab = once
    newest = backup["dumps"][-1]
    directory: Path = backup["dir"]

    lost_volume = vm(
        lab.db_host, "docker", "volume", "inspect", "--format", "{{.CreatedAt}}", VOLUME
    ).stdout.strip()
    # Lose everything: the service and the volume with the data.
    vm(lab.manager, "docker", "service", "rm", SERVICE)
    for _ in range(120):
        left = vm(
            lab.db_host,
            "docker",
            "ps",
            "--all",
            "--quiet",
            "--filter",
            f"label=com.docker.swarm.service.name={SERVICE}",
        ).stdout.split()
        if not left:
            break
        time.sleep(1)
    vm(lab.db_host, "docker", "volume", "rm", VOLUME)
    assert vm(lab.db_host, "docker", "volume", "inspect", VOLUME, check=False).returncode != 0

    done, seconds = ansible_playbook(
        "playbooks/restore-db.yml",
        "-e",
        f"timescaledb_backup_dir={directory}",
        "-e",
        f"restore_file={newest}",
        "-e",
        "restore_confirm=thingsboard",
    )
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    record("restore_playbook_seconds", round(seconds, 1))
    record("pg_restore_seconds", delta_seconds(done.stdout, "pg_restore"))

    assert lab.digest() == seeded
    nodes = vm(
        lab.manager,
        "docker",
        "service",
        "ps",
        SERVICE,
        "--filter",
        "desired-state=running",
        "--format",
        "{{.Node}}",
    ).stdout.split()
    assert nodes == [lab.db_host]
    created = vm(
        lab.db_host, "docker", "volume", "inspect", "--format", "{{.CreatedAt}}", VOLUME
    ).stdout.strip()
    assert created != lost_volume, "the restore made a fresh volume"
    owner = lab.psql(
        "SELECT tableowner FROM pg_tables WHERE tablename = 'inference'", database="thingsboard"
    )
    assert owner == "thingsboard"

    # The scenario's idempotence step runs after this test: the whole converge again, on the
    # restored database, must change nothing.
