"""playbooks/timescaledb.yml, backup-db.yml and restore-db.yml refuse bad requests before
any host is contacted: the inventories name hosts that do not exist, so a contacted host
would fail as unreachable."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from tests.timescaledb.conftest import ansible_playbook, write_inventory

PLAYBOOKS = ["playbooks/timescaledb.yml", "playbooks/backup-db.yml", "playbooks/restore-db.yml"]


def errors(output: str) -> str:
    """The failure messages, unwrapped."""
    return " ".join(output.split())


@pytest.mark.parametrize("playbook", PLAYBOOKS)
@pytest.mark.parametrize(
    ("group", "count"),
    [(None, 0), ({"hosts": {}}, 0), ({"hosts": {"nohost-1": None, "nohost-2": None}}, 2)],
    ids=["absent", "empty", "two"],
)
def test_needs_exactly_one_database_host(
    tmp_path: Path, playbook: str, group: dict[str, Any] | None, count: int
) -> None:
    done = ansible_playbook(write_inventory(tmp_path, group), playbook)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "UNREACHABLE" not in output
    assert f"group timescaledb has {count} hosts" in errors(output)


@pytest.fixture
def backups(tmp_path: Path) -> Path:
    """A backup directory with one good-looking backup, a foreign file and a tampered one."""
    directory = tmp_path / "backups"
    directory.mkdir()
    good = directory / "thingsboard-20260101T000000Z.dump"
    good.write_bytes(b"PGDMP\x01\x0e\x00 not restored by these tests")
    digest = hashlib.sha256(good.read_bytes()).hexdigest()
    (directory / f"{good.name}.sha256").write_text(f"{digest}  {good.name}\n")
    (directory / "garbage.dump").write_bytes(b"SELECT 1;\n")
    (directory / "tampered.dump").write_bytes(good.read_bytes())
    (directory / "tampered.dump.sha256").write_text(f"{'0' * 64}  tampered.dump\n")
    return directory


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "nothing restored: name the backup with -e restore_file="),
        (
            ["restore_file=thingsboard-20260101T000000Z.dump"],
            "confirm with -e restore_confirm=thingsboard (got none)",
        ),
        (
            ["restore_file=latest", "restore_confirm=yes"],
            "restoring thingsboard-20260101T000000Z.dump DESTROYS database thingsboard",
        ),
        (
            ["restore_file=thingsboard-20991231T000000Z.dump", "restore_confirm=thingsboard"],
            "thingsboard-20991231T000000Z.dump does not exist",
        ),
        (
            ["restore_file=garbage.dump", "restore_confirm=thingsboard"],
            "is not a pg_dump custom-format archive",
        ),
        (
            ["restore_file=tampered.dump", "restore_confirm=thingsboard"],
            "does not match its sha256sum file",
        ),
    ],
    ids=["no-file", "no-confirmation", "wrong-confirmation", "missing", "garbage", "tampered"],
)
def test_restore_refuses_before_touching_anything(
    tmp_path: Path, backups: Path, extra: list[str], message: str
) -> None:
    inventory = write_inventory(tmp_path, {"hosts": {"nohost-2": None}})
    before = {path.name: path.read_bytes() for path in backups.iterdir()}
    args = ["-e", f"timescaledb_backup_dir={backups}"]
    for item in extra:
        args += ["-e", item]
    done = ansible_playbook(inventory, "playbooks/restore-db.yml", *args)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "UNREACHABLE" not in output
    assert "nothing restored" in errors(output)
    assert message in errors(output), errors(output)[-2000:]
    assert {path.name: path.read_bytes() for path in backups.iterdir()} == before
