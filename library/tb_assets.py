#!/usr/bin/python
"""Ansible module: ensure ThingsBoard assets of one type, by name."""

from __future__ import annotations

DOCUMENTATION = r"""
module: tb_assets
short_description: Ensure the ThingsBoard assets of one type (e.g. one per swarm node)
description:
  - As a tenant administrator, lists the tenant's assets of O(type) (one request) and creates
    the assets of O(assets) that are missing, or updates the label and description of those
    that differ. With O(purge), assets of O(type) that are not listed are deleted (one request
    each; their relations go with them).
options:
  type:
    description: Asset type (ThingsBoard makes an asset profile of that name when needed).
    type: str
    required: true
  assets:
    description: The assets.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Asset name (unique in the tenant).
        type: str
        required: true
      label:
        description: Label shown in widgets.
        type: str
        default: ""
      description:
        description: additionalInfo.description.
        type: str
        default: ""
  purge:
    description: Delete assets of O(type) that are not in O(assets).
    type: bool
    default: false
notes:
  - Supports check mode and diff mode.
extends_documentation_fragment:
  - tb_connection
  - tb_connection.fleet
"""

EXAMPLES = r"""
- name: One asset per swarm node
  tb_assets:
    url: http://127.0.0.1:8080
    username: "{{ thingsboard_tenant_admin_email }}"
    password: "{{ thingsboard_tenant_admin_password }}"
    type: swarm-node
    assets:
      - {name: lab-vm1, label: "Swarm node lab-vm1"}
      - {name: lab-vm2, label: "Swarm node lab-vm2"}
  no_log: true
"""

RETURN = r"""
assets:
  description: Asset name to UUID (empty for an asset check mode would create).
  type: dict
  returned: always
created:
  description: Assets created.
  type: list
  elements: str
  returned: always
updated:
  description: Assets updated.
  type: list
  elements: str
  returned: always
deleted:
  description: Assets deleted (O(purge)).
  type: list
  elements: str
  returned: always
requests:
  description: HTTP requests sent (retries included).
  type: int
  returned: always
"""

from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.tb_api import TbError, entity_id  # noqa: E402
from ansible.module_utils.tb_fleet import (  # noqa: E402
    fleet_argument_spec,
    fleet_client,
    list_all,
)

PAGE_SIZE = 1000


def fields(asset: dict[str, Any]) -> dict[str, str]:
    info = asset.get("additionalInfo") or {}
    return {
        "label": asset.get("label") or "",
        "description": (info.get("description") if isinstance(info, dict) else "") or "",
    }


def main() -> None:
    spec = fleet_argument_spec()
    spec.update(
        type={"type": "str", "required": True},
        assets={
            "type": "list",
            "elements": "dict",
            "required": True,
            "options": {
                "name": {"type": "str", "required": True},
                "label": {"type": "str", "default": ""},
                "description": {"type": "str", "default": ""},
            },
        },
        purge={"type": "bool", "default": False},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    wanted = {a["name"]: a for a in params["assets"]}
    if len(wanted) != len(params["assets"]):
        module.fail_json(msg="assets: duplicate names")
    client = fleet_client(params)
    ids: dict[str, str] = {}
    created: list[str] = []
    updated: list[str] = []
    deleted: list[str] = []
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    try:
        existing = {
            a["name"]: a
            for a in list_all(client, "/api/tenant/assets", PAGE_SIZE, {"type": params["type"]})
        }
        for name, asset in wanted.items():
            desired = {"label": asset["label"], "description": asset["description"]}
            current = existing.get(name)
            if current is None:
                created.append(name)
                before[name], after[name] = {}, desired
                ids[name] = ""
                if not module.check_mode:
                    body = {
                        "name": name,
                        "type": params["type"],
                        "label": asset["label"],
                        "additionalInfo": {"description": asset["description"]},
                    }
                    ids[name] = entity_id(client.post("/api/asset", body))
                continue
            ids[name] = entity_id(current)
            if fields(current) == desired:
                continue
            updated.append(name)
            before[name], after[name] = fields(current), desired
            if not module.check_mode:
                info = current.get("additionalInfo")
                info = dict(info) if isinstance(info, dict) else {}
                info["description"] = asset["description"]
                client.post(
                    "/api/asset", {**current, "label": asset["label"], "additionalInfo": info}
                )
        if params["purge"]:
            for name in sorted(set(existing) - set(wanted)):
                deleted.append(name)
                before[name], after[name] = fields(existing[name]), {}
                if not module.check_mode:
                    client.request("DELETE", f"/api/asset/{entity_id(existing[name])}")
    except TbError as error:
        module.fail_json(msg=f"assets of type {params['type']}: {error}", requests=client.requests)
    module.exit_json(
        changed=bool(created or updated or deleted),
        assets=ids,
        created=created,
        updated=updated,
        deleted=deleted,
        requests=client.requests,
        diff={"before": before, "after": after},
    )


if __name__ == "__main__":
    main()
