#!/usr/bin/python
"""Ansible module: ensure MQTT users of EMQX's built-in database, in bulk."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: emqx_users
short_description: Ensure MQTT users in the EMQX built-in authentication database, in bulk
description:
  - Lists the users of a C(password_based:built_in_database) authenticator (10,000 per
    request), creates the missing ones with C(POST /authentication/{id}/import_users?type=plain)
    in batches (a multipart JSON file, as the EMQX 5.8 API declares), and optionally deletes
    users that match I(purge_pattern) but are not listed.
  - EMQX cannot show a stored password, so with I(update_password=on_create) existing users
    are left alone, like M(ansible.builtin.user). A user whose I(is_superuser) differs is
    re-imported with the listed password (EMQX's update needs the password).
  - Passwords are never logged or returned.
options:
  api_url:
    description: Base URL of the EMQX REST API, e.g. C(http://emqx-1.emqx.tinyml:18083).
    type: str
    required: true
  api_key:
    description: API key (from C(api_key.bootstrap_file)).
    type: str
    required: true
  api_secret:
    description: Secret of I(api_key).
    type: str
    required: true
  validate_certs:
    description: Verify the server certificate when I(api_url) is https.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for each HTTP response.
    type: float
    default: 60
  authenticator:
    description: Authenticator id.
    type: str
    default: password_based:built_in_database
  users:
    description: The users to ensure.
    type: list
    elements: dict
    default: []
    suboptions:
      user_id:
        description: MQTT username.
        type: str
        required: true
      password:
        description: Password (used on create, and on every run with I(update_password=always)).
        type: str
        required: true
      is_superuser:
        description: Superusers bypass authorization.
        type: bool
        default: false
  update_password:
    description:
      - C(on_create) sets passwords of new users only; C(always) re-imports every listed user
        with its password, which always reports a change (EMQX cannot compare passwords).
    type: str
    choices: [on_create, always]
    default: on_create
  purge_pattern:
    description:
      - Python regular expression; existing users whose whole name matches it and who are
        not in I(users) are deleted (one request each, as EMQX has no bulk delete).
    type: str
  batch_size:
    description: Users per import request.
    type: int
    default: 2000
author: TinyML fleet project
"""

EXAMPLES = r"""
- name: Ensure the fleet's MQTT users
  emqx_users:
    api_url: "http://emqx-1.emqx.tinyml:18083"
    api_key: ansible
    api_secret: "{{ emqx_api_secret }}"
    users: "{{ devices | map('combine', {'is_superuser': false}) | list }}"
    purge_pattern: "lab-vm2-.*"
  delegate_to: localhost
  no_log: true
"""

RETURN = r"""
created:
  description: Names of the users created.
  returned: always
  type: list
  elements: str
updated:
  description: Names of existing users re-imported (superuser flag or update_password=always).
  returned: always
  type: list
  elements: str
deleted:
  description: Names of the users deleted by I(purge_pattern).
  returned: always
  type: list
  elements: str
created_count:
  description: Number of users created.
  returned: always
  type: int
updated_count:
  description: Number of users updated.
  returned: always
  type: int
deleted_count:
  description: Number of users deleted.
  returned: always
  type: int
existing_count:
  description: Number of users the authenticator had before the run.
  returned: always
  type: int
requests:
  description: HTTP requests made (retries included).
  returned: always
  type: int
"""

import json  # noqa: E402
import re  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.emqx_api import (  # noqa: E402
    EmqxClient,
    EmqxError,
    FleetModule,
    client_from_params,
    common_argument_spec,
    exit_compact,
    quote_segment,
)


def plan(
    existing: dict[str, bool],
    wanted: list[dict[str, Any]],
    update_password: str,
    purge_pattern: str | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """(to create, to update, to delete) from existing {user_id: is_superuser}."""
    create, update = [], []
    listed = set()
    for user in wanted:
        name = user["user_id"]
        listed.add(name)
        if name not in existing:
            create.append(user)
        elif update_password == "always" or existing[name] != user["is_superuser"]:
            update.append(user)
    delete = []
    if purge_pattern:
        pattern = re.compile(purge_pattern)
        delete = sorted(n for n in existing if n not in listed and pattern.fullmatch(n))
    return create, update, delete


def import_users(
    client: EmqxClient, authenticator: str, users: list[dict[str, Any]], batch_size: int
) -> None:
    path = f"/authentication/{quote_segment(authenticator)}/import_users"
    for start in range(0, len(users), batch_size):
        batch = [
            {"user_id": u["user_id"], "password": u["password"], "is_superuser": u["is_superuser"]}
            for u in users[start : start + batch_size]
        ]
        content = json.dumps(batch).encode()
        _, result = client.request(
            "POST",
            path,
            query={"type": "plain"},
            multipart=("filename", "users.json", content, "application/json"),
        )
        if isinstance(result, dict) and result.get("failed"):
            raise EmqxError(200, "IMPORT_FAILED", f"{result['failed']} users failed", "POST", path)


def run(module: AnsibleModule) -> dict[str, Any]:
    params = module.params
    client = client_from_params(params)
    authenticator = params["authenticator"]
    users_path = f"/authentication/{quote_segment(authenticator)}/users"
    wanted = params["users"]
    names = [u["user_id"] for u in wanted]
    if len(set(names)) != len(names):
        module.fail_json(msg="users: duplicate user_id")
    existing = {u["user_id"]: bool(u.get("is_superuser")) for u in client.get_all(users_path)}
    create, update, delete = plan(
        existing, wanted, params["update_password"], params["purge_pattern"]
    )
    changed = bool(create or update or delete)
    if changed and not module.check_mode:
        import_users(client, authenticator, create + update, params["batch_size"])
        for name in delete:
            client.request("DELETE", f"{users_path}/{quote_segment(name)}")
    result: dict[str, Any] = {
        "changed": changed,
        "created": [u["user_id"] for u in create],
        "updated": [u["user_id"] for u in update],
        "deleted": delete,
        "created_count": len(create),
        "updated_count": len(update),
        "deleted_count": len(delete),
        "existing_count": len(existing),
        "requests": client.requests,
    }
    if module._diff:
        lines = [f"+ {u['user_id']}" for u in create]
        lines += [f"~ {u['user_id']}" for u in update]
        lines += [f"- {name}" for name in delete]
        result["diff"] = {"prepared": "\n".join(lines) + ("\n" if lines else "")}
    return result


def shown_args(params: dict[str, Any]) -> dict[str, Any]:
    """The module arguments echoed back: the users list as a count (see exit_compact)."""
    shown = {k: v for k, v in params.items() if k not in ("api_secret", "users")}
    shown["users"] = f"{len(params['users'])} entries"
    return shown


def main() -> None:
    argument_spec = common_argument_spec()
    argument_spec.update(
        authenticator={"type": "str", "default": "password_based:built_in_database"},
        users={
            "type": "list",
            "elements": "dict",
            "default": [],
            "options": {
                "user_id": {"type": "str", "required": True},
                "password": {"type": "str", "required": True, "no_log": True},
                "is_superuser": {"type": "bool", "default": False},
            },
        },
        update_password={"type": "str", "default": "on_create", "choices": ["on_create", "always"]},
        purge_pattern={"type": "str"},
        batch_size={"type": "int", "default": 2000},
    )
    module = FleetModule(argument_spec=argument_spec, supports_check_mode=True)
    if module.params["purge_pattern"]:
        try:
            re.compile(module.params["purge_pattern"])
        except re.error as exc:
            module.fail_json(msg=f"purge_pattern: {exc}")
    try:
        exit_compact(module, run(module), shown_args(module.params))
    except EmqxError as exc:
        module.fail_json(msg=str(exc), status=exc.status, code=exc.code)


if __name__ == "__main__":
    main()
