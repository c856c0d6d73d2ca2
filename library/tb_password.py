#!/usr/bin/python
"""Ansible module: ensure a ThingsBoard user's password, rotating it from known old ones."""

from __future__ import annotations

DOCUMENTATION = r"""
module: tb_password
short_description: Ensure the password of a ThingsBoard user; prove the old ones are refused
description:
  - Logs in as O(username) with O(password). When that fails, tries each of
    O(previous_passwords) (the vendor default, an earlier rotation) and changes the password
    with C(POST /api/auth/changePassword) from the one that works.
  - Then checks that none of O(previous_passwords) is accepted any more, and fails if one
    is, so that no default password survives a deployment.
  - Fails when neither the password nor a previous one is accepted.
options:
  url:
    description: Base URL of ThingsBoard, e.g. C(http://127.0.0.1:8080).
    type: str
    required: true
  username:
    description: The user (e-mail) whose password is ensured.
    type: str
    required: true
  password:
    description: The password the user must have.
    type: str
    required: true
  previous_passwords:
    description: Passwords the user may still have, tried in order.
    type: list
    elements: str
    default: []
notes:
  - Supports check mode.
extends_documentation_fragment:
  - tb_connection
"""

EXAMPLES = r"""
- name: Rotate the system administrator's password away from the default
  tb_password:
    url: http://127.0.0.1:8080
    username: sysadmin@thingsboard.org
    password: "{{ thingsboard_sysadmin_password }}"
    previous_passwords: [sysadmin]
  no_log: true
"""

RETURN = r"""
previous_refused:
  description: Whether every previous password is refused now (false only in check mode).
  type: bool
  returned: always
requests:
  description: HTTP requests sent.
  type: int
  returned: always
"""

from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.tb_api import (  # noqa: E402
    TbClient,
    TbError,
    client_from_params,
    common_argument_spec,
)


def ensure_password(client: TbClient, previous: list[str], check_mode: bool) -> bool:
    """Returns whether the password was (or would be) changed."""
    if client.can_log_in(client.username, client.password):
        return False
    for old in previous:
        if not client.can_log_in(client.username, old):
            continue
        if not check_mode:
            session = TbClient(
                client.base,
                client.username,
                old,
                validate_certs=client.validate_certs,
                timeout=client.timeout,
            )
            session.post(
                "/api/auth/changePassword",
                {"currentPassword": old, "newPassword": client.password},
            )
            client.requests += session.requests
        return True
    raise TbError(
        401,
        "AUTHENTICATION",
        "neither the password nor a previous one is accepted",
        "POST",
        "/api/auth/login",
    )


def main() -> None:
    spec = common_argument_spec()
    spec["previous_passwords"] = {"type": "list", "elements": "str", "default": [], "no_log": True}
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    client = client_from_params(module.params)
    previous = [p for p in module.params["previous_passwords"] if p != module.params["password"]]
    try:
        changed = ensure_password(client, previous, module.check_mode)
        still_accepted = (
            []
            if module.check_mode and changed
            else [
                index
                for index, old in enumerate(previous)
                if client.can_log_in(client.username, old)
            ]
        )
    except TbError as error:
        module.fail_json(msg=f"{module.params['username']}: {error}", requests=client.requests)
    if still_accepted:
        module.fail_json(
            msg=f"{module.params['username']}: previous password #{still_accepted[0] + 1} "
            "is still accepted",
            requests=client.requests,
        )
    result: dict[str, Any] = {
        "changed": changed,
        "previous_refused": not (module.check_mode and changed),
        "requests": client.requests,
    }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
