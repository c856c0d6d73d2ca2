"""roles/fleet through ansible-playbook: one devices file per simulator host, in the simulator's
schema, mode 0600; names and passwords kept across re-runs, scale-up and scale-down; changed
only when something changed; check mode and diff; Ansible Vault."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from ansible.parsing.vault import VaultLib, VaultSecret, is_encrypted

from tests.conftest import REPO_ROOT
from tests.tb_provision import harness

SCHEMA = json.loads(
    (REPO_ROOT / "device_sim/src/tinyml_sim/schema/devices-file.v1.json").read_text()
)
VAULT_PASSWORD = "fleet-test-vault-password"


def inventory(
    directory: Path, fleet: dict[str, dict[str, int]], *, thingsboard: bool = False
) -> Path:
    """Simulator hosts only: playbooks/provision.yml then runs just the fleet play."""
    local = {"ansible_connection": "local"}
    hosts = {h: {**local, "fleet_devices": c} for h, c in fleet.items()}
    children: dict[str, Any] = {"simulators": {"hosts": hosts}}
    if thingsboard:
        children["thingsboard"] = {"hosts": {"tb-host": local}}
    document = {"all": {"vars": {"fleet_classes": harness.CLASSES}, "children": children}}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "hosts.yml").write_text(yaml.safe_dump(document))
    return directory


def read(directory: Path, host: str, vault: bool = False) -> dict[str, Any]:
    raw = (directory / "credentials" / "fleet" / f"{host}.json").read_bytes()
    assert is_encrypted(raw) is vault
    if vault:
        raw = VaultLib([("default", VaultSecret(VAULT_PASSWORD.encode()))]).decrypt(raw)
    document: dict[str, Any] = json.loads(raw)
    return document


def passwords(document: dict[str, Any]) -> dict[str, str]:
    return {d["name"]: d["password"] for d in document["devices"]}


def test_files_names_passwords_and_idempotence(tmp_path: Path) -> None:
    first = {"f-vm1": {"vibration": 3, "gesture": 2}, "f-vm2": {"vibration": 1}, "f-vm3": {}}
    grown = {"f-vm1": {"vibration": 5, "gesture": 1}, "f-vm2": {"vibration": 1}, "f-vm3": {}}

    fresh = harness.run_playbook(inventory(tmp_path, first))
    assert fresh.rc == 0, fresh.failures() or fresh.stderr
    written = fresh.results("Write this host's devices file on the controller")
    assert all(r["changed"] for r in written.values())
    assert written["f-vm1"]["created_count"] == 5
    read_back = fresh.result("Read the devices file back, passwords included")
    assert "censored" in read_back  # the passwords are never shown
    folder = tmp_path / "credentials" / "fleet"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    documents = {}
    for host in first:
        assert stat.S_IMODE((folder / f"{host}.json").stat().st_mode) == 0o600
        documents[host] = read(tmp_path, host)
        jsonschema.validate(documents[host], SCHEMA)
    assert [d["name"] for d in documents["f-vm1"]["devices"]] == [
        "f-vm1-vibration-00001",
        "f-vm1-vibration-00002",
        "f-vm1-vibration-00003",
        "f-vm1-gesture-00001",
        "f-vm1-gesture-00002",
    ]
    assert documents["f-vm3"]["devices"] == []  # valid, nothing to run
    assert set(documents["f-vm3"]["classes"]) == {"vibration", "gesture"}
    secrets = passwords(documents["f-vm1"])
    assert len(set(secrets.values())) == 5
    assert all(len(p) == 32 and p.isalnum() for p in secrets.values())
    summary = fresh.result(
        "Publish the file, its summary and its content for the delivering and provisioning roles"
    )
    assert "censored" in summary

    again = harness.run_playbook(inventory(tmp_path, first))
    assert again.rc == 0
    assert again.changed == 0

    preview = harness.run_playbook(inventory(tmp_path, grown), check=True, diff=True)
    assert preview.rc == 0
    assert preview.changed == 1
    assert read(tmp_path, "f-vm1") == documents["f-vm1"]  # check mode wrote nothing
    assert "f-vm1-vibration-00005" in preview.stdout  # diff: names added and removed
    assert "f-vm1-gesture-00002" in preview.stdout
    assert secrets["f-vm1-vibration-00001"] not in preview.stdout

    scaled = harness.run_playbook(inventory(tmp_path, grown))
    assert scaled.rc == 0
    after = passwords(read(tmp_path, "f-vm1"))
    assert sorted(after) == sorted(
        [f"f-vm1-vibration-{n:05d}" for n in range(1, 6)] + ["f-vm1-gesture-00001"]
    )
    for name in after.keys() & secrets.keys():
        assert after[name] == secrets[name]
    assert read(tmp_path, "f-vm2") == documents["f-vm2"]
    message = scaled.result("Report the fleet")["msg"]
    assert "7 devices on 3 simulator hosts, +2 -1" in message


def test_vault(tmp_path: Path) -> None:
    fleet = {"v-vm1": {"vibration": 2}}
    vault_file = tmp_path / "vault-password"
    vault_file.write_text(VAULT_PASSWORD + "\n")
    with_vault = {"ANSIBLE_VAULT_PASSWORD_FILE": str(vault_file)}
    inventory_dir = inventory(tmp_path / "inventory", fleet)

    plain = harness.run_playbook(inventory_dir)
    assert plain.rc == 0
    before = passwords(read(inventory_dir, "v-vm1"))

    encrypted = harness.run_playbook(inventory_dir, env=with_vault)
    assert encrypted.rc == 0
    assert encrypted.changed == 1  # the plain file is encrypted, passwords kept
    assert passwords(read(inventory_dir, "v-vm1", vault=True)) == before

    again = harness.run_playbook(inventory_dir, env=with_vault)
    assert again.rc == 0
    assert again.changed == 0  # same decrypted content: not rewritten

    without = harness.run_playbook(inventory_dir)
    assert without.rc != 0
    assert any(
        "v-vm1.json is vault-encrypted but no vault password is configured" in f
        for f in without.failures()
    ), without.failures()


def test_provisioning_needs_the_fleet_role_first(tmp_path: Path) -> None:
    fleet = {"n-vm1": {"vibration": 1}, "n-vm2": {"gesture": 1}}
    run = harness.run_playbook(inventory(tmp_path, fleet, thingsboard=True), limit="tb-host")
    assert run.rc != 0
    (failure,) = run.failures()
    assert "host n-vm1, n-vm2: no fleet facts" in failure
