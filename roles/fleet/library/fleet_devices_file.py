#!/usr/bin/python
"""Documentation of the fleet_devices_file action (roles/fleet/action_plugins): it runs on the
controller only, so this module is never executed on a host."""

from __future__ import annotations

DOCUMENTATION = r"""
module: fleet_devices_file
short_description: Write a simulator host's devices file on the controller, passwords kept
description:
  - Action plugin (runs on the controller, never on the host the task is for). Takes a
    devices file in the simulator's devices-file.v1 format without passwords (from the
    C(fleet_host_plan) filter), gives every device the password it already has in the
    existing file at O(path), or a new random one (letters and digits), and writes the file
    with mode 0600 (its directory 0700).
  - With a vault password configured (C(--vault-password-file), C(--vault-id),
    C(--ask-vault-pass) or C(ANSIBLE_VAULT_PASSWORD_FILE)) the file is encrypted with
    Ansible Vault (O(vault=auto)); an encrypted file is decrypted to compare and to keep
    its passwords. The file is written only when the decrypted content, the encryption or
    the mode has to change, so a re-run reports no change.
  - Passwords are never in the result unless O(return_document) is set, and then the
    result is marked C(_ansible_no_log) (censored wherever Ansible shows it), so the task
    needs no C(no_log) and its errors (no vault password, a broken file) stay readable.
options:
  path:
    description: The file on the controller.
    type: path
    required: true
  document:
    description: The devices file without passwords (C(schema), C(host), C(classes), C(devices)).
    type: dict
    required: true
  password_length:
    description: Length of generated passwords (16 or more).
    type: int
    default: 32
  vault:
    description:
      - C(auto) encrypts when a vault password is configured, C(always) fails without one,
        C(never) writes plain JSON (a vault-encrypted file is then rewritten in plain text).
    type: str
    choices: [auto, always, never]
    default: auto
  vault_id:
    description: Vault id to encrypt with when several are configured (default the first).
    type: str
  return_document:
    description: Return the written document, passwords included, as C(document).
    type: bool
    default: false
notes:
  - Supports check mode and diff mode (device names added and removed, never passwords).
"""

EXAMPLES = r"""
- name: Write the devices file of this simulator host
  fleet_devices_file:
    path: "{{ fleet_credentials_dir }}/{{ inventory_hostname }}.json"
    document: "{{ inventory_hostname | fleet_host_plan(fleet_devices, fleet_classes_resolved) }}"
    return_document: true
  register: fleet_file
"""

RETURN = r"""
path:
  description: The file.
  type: str
  returned: always
devices:
  description: Number of devices in the file.
  type: int
  returned: always
created:
  description: Devices that got a new password (new devices).
  type: list
  elements: str
  returned: always
removed:
  description: Devices of the previous file that are gone.
  type: list
  elements: str
  returned: always
created_count:
  description: Number of new devices.
  type: int
  returned: always
removed_count:
  description: Number of devices gone.
  type: int
  returned: always
encrypted:
  description: Whether the file is (or in check mode would be) vault-encrypted.
  type: bool
  returned: always
content_changed:
  description: Whether the decrypted content changed.
  type: bool
  returned: always
content_sha256:
  description: sha256 of the (decrypted) file content.
  type: str
  returned: always
document:
  description: The devices file, passwords included.
  type: dict
  returned: when return_document is true
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402


def main() -> None:
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    module.fail_json(msg="fleet_devices_file runs on the controller as an action plugin")


if __name__ == "__main__":
    main()
