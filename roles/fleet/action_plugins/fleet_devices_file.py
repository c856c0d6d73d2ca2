"""Action plugin: write one simulator host's devices file on the controller, with passwords
generated once per device and kept, vault-encrypted when a vault password is configured.

Runs entirely on the controller (nothing is sent to the host the task runs for). The file is
rewritten only when its decrypted content, its encryption or its mode must change, so a
re-run reports no change; passwords never appear in the result unless asked for
(``return_document``), and the task that asks sets ``no_log``.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
import string
import tempfile
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.parsing.vault import VaultLib, is_encrypted, match_encrypt_secret
from ansible.plugins.action import ActionBase

ALPHABET = string.ascii_letters + string.digits
FILE_MODE = 0o600
DIR_MODE = 0o700
VAULT_CHOICES = ("auto", "always", "never")


def new_password(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def with_passwords(
    document: dict[str, Any], known: dict[str, str], length: int
) -> tuple[dict[str, Any], list[str]]:
    """``document`` with each device's password: the known one, else a new one. The password
    goes right after the class, as in the simulator's examples. Returns (document, created)."""
    devices, created = [], []
    for device in document.get("devices") or []:
        name = str(device["name"])
        password = known.get(name)
        if not password:
            password = new_password(length)
            created.append(name)
        entry: dict[str, Any] = {}
        for key, value in device.items():
            if key == "password":
                continue
            entry[key] = value
            if key == "class":
                entry["password"] = password
        entry.setdefault("password", password)
        devices.append(entry)
    return {**document, "devices": devices}, created


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"


def known_passwords(text: str, path: Path) -> dict[str, str]:
    try:
        existing = json.loads(text)
    except ValueError as exc:
        raise AnsibleActionFail(
            f"{path}: not JSON ({exc}); repair it, or remove it to generate new passwords"
        ) from exc
    devices = existing.get("devices") if isinstance(existing, dict) else None
    if not isinstance(devices, list):
        raise AnsibleActionFail(f"{path}: not a devices file (no devices list)")
    return {
        str(d["name"]): str(d["password"])
        for d in devices
        if isinstance(d, dict) and d.get("name") and d.get("password")
    }


class ActionModule(ActionBase):  # type: ignore[misc]
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(
        ("path", "document", "password_length", "vault", "vault_id", "return_document")
    )

    def run(self, tmp: Any = None, task_vars: Any = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        del tmp
        _, args = self.validate_argument_spec(
            argument_spec={
                "path": {"type": "path", "required": True},
                "document": {"type": "dict", "required": True},
                "password_length": {"type": "int", "default": 32},
                "vault": {"type": "str", "default": "auto", "choices": list(VAULT_CHOICES)},
                "vault_id": {"type": "str"},
                "return_document": {"type": "bool", "default": False},
            }
        )
        path = Path(args["path"])
        if args["password_length"] < 16:
            raise AnsibleActionFail("password_length: at least 16")
        vault = self._loader._vault
        vault_secrets = list(vault.secrets or [])
        if args["vault"] == "always" and not vault_secrets:
            raise AnsibleActionFail(
                "vault=always but no vault password is configured (--vault-password-file,"
                " --vault-id, --ask-vault-pass or ANSIBLE_VAULT_PASSWORD_FILE)"
            )
        encrypt = bool(vault_secrets) and args["vault"] != "never"

        before_text, was_encrypted, before_mode = self._read(path, vault)
        known = known_passwords(before_text, path) if before_text is not None else {}
        document, created = with_passwords(args["document"], known, args["password_length"])
        after_text = render(document)
        names = [d["name"] for d in document["devices"]]
        removed = sorted(set(known) - set(names))

        content_changed = before_text != after_text
        changed = (
            content_changed
            or was_encrypted != encrypt
            or before_mode is None
            or stat.S_IMODE(before_mode) != FILE_MODE
        )
        if changed and not self._task.check_mode:
            self._write(path, after_text, encrypt, vault, args.get("vault_id"))
        result.update(
            changed=changed,
            path=str(path),
            devices=len(names),
            created=created,
            removed=removed,
            created_count=len(created),
            removed_count=len(removed),
            encrypted=encrypt,
            content_changed=content_changed,
            content_sha256=hashlib.sha256(after_text.encode("utf-8")).hexdigest(),
        )
        if args["return_document"]:
            # The passwords: this result is censored wherever Ansible shows it, so the task
            # needs no no_log of its own and its errors (no vault password, a broken file)
            # stay readable.
            result["document"] = document
            result["_ansible_no_log"] = True
        if self._task.diff and content_changed:
            lines = [f"+ {name}" for name in created] + [f"- {name}" for name in removed]
            if not lines:
                lines = ["~ device settings (classes, faults or drift) changed"]
            result["diff"] = {"prepared": "\n".join(lines) + "\n"}
        return result

    def _read(self, path: Path, vault: VaultLib) -> tuple[str | None, bool, int | None]:
        """(decrypted text or None when absent, whether it was encrypted, its mode)."""
        try:
            raw = path.read_bytes()
            mode = path.stat().st_mode
        except FileNotFoundError:
            return None, False, None
        except OSError as exc:
            raise AnsibleActionFail(f"{path}: {exc}") from exc
        if not is_encrypted(raw):
            return raw.decode("utf-8"), False, mode
        if not vault.secrets:
            raise AnsibleActionFail(
                f"{path} is vault-encrypted but no vault password is configured"
                " (--vault-password-file, --vault-id, --ask-vault-pass or"
                " ANSIBLE_VAULT_PASSWORD_FILE)"
            )
        try:
            plain = vault.decrypt(raw)
        except Exception as exc:  # AnsibleVaultError and friends: name the file
            raise AnsibleActionFail(f"{path}: cannot decrypt: {exc}") from exc
        return bytes(plain).decode("utf-8"), True, mode

    def _write(
        self, path: Path, text: str, encrypt: bool, vault: VaultLib, vault_id: str | None
    ) -> None:
        data = text.encode("utf-8")
        if encrypt:
            chosen_id, secret = match_encrypt_secret(vault.secrets, encrypt_vault_id=vault_id)
            data = bytes(vault.encrypt(data, secret=secret, vault_id=chosen_id))
        try:
            path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            try:
                with os.fdopen(handle, "wb") as out:
                    os.fchmod(out.fileno(), FILE_MODE)
                    out.write(data)
                os.replace(temporary, path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise AnsibleActionFail(f"{path}: {exc}") from exc
