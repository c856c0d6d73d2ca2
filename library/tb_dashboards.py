#!/usr/bin/python
"""Ansible module: ensure ThingsBoard dashboards from their export format, by title."""

from __future__ import annotations

DOCUMENTATION = r"""
module: tb_dashboards
short_description: Import or update ThingsBoard dashboards by title
description:
  - Each of O(dashboards) is a dashboard in ThingsBoard's export format (C(title),
    C(configuration) with C(entityAliases), C(widgets), C(states), ...).
  - Lists the tenant's dashboards (one request); a title that is absent is created
    (C(POST /api/dashboard)); a title that exists is read (one request) and saved again only
    when its configuration differs from the wanted one.
  - O(substitutions) replaces every string value of a configuration that equals one of its
    keys by the key's value (any JSON), e.g. C(%FLEET_CLASSES%) by the list of device
    profiles, so that one file fits any fleet.
  - When several dashboards share a title, the oldest is managed and a warning names the
    others.
options:
  dashboards:
    description: Dashboards in ThingsBoard's export format (at least C(title) and C(configuration)).
    type: list
    elements: dict
    required: true
  substitutions:
    description: String values to replace in the configurations, and what replaces them.
    type: dict
    default: {}
notes:
  - Supports check mode and diff mode.
extends_documentation_fragment:
  - tb_connection
  - tb_connection.fleet
"""

EXAMPLES = r"""
- name: Ensure the fleet dashboards
  tb_dashboards:
    url: http://127.0.0.1:8080
    username: "{{ thingsboard_tenant_admin_email }}"
    password: "{{ thingsboard_tenant_admin_password }}"
    dashboards: >-
      {{ query('ansible.builtin.file', *query('ansible.builtin.fileglob', 'dashboards/*.json'))
         | map('from_json') | list }}
    substitutions:
      "%FLEET_CLASSES%": [vibration, gesture]
  no_log: true
"""

RETURN = r"""
dashboards:
  description: Title to UUID (empty for a dashboard check mode would create).
  type: dict
  returned: always
created:
  description: Titles created.
  type: list
  elements: str
  returned: always
updated:
  description: Titles updated.
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
# Fields of an export that are the exporting server's, not the dashboard's.
SERVER_FIELDS = ("id", "tenantId", "createdTime", "version", "assignedCustomers", "name")


def substitute(value: Any, substitutions: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return substitutions.get(value, value)
    if isinstance(value, dict):
        return {key: substitute(item, substitutions) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, substitutions) for item in value]
    return value


def wanted_dashboard(export: dict[str, Any], substitutions: dict[str, Any]) -> dict[str, Any]:
    body = {key: value for key, value in export.items() if key not in SERVER_FIELDS}
    body["configuration"] = substitute(export.get("configuration") or {}, substitutions)
    return body


def oldest_by_title(
    infos: list[dict[str, Any]],
) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    by_title: dict[str, dict[str, Any]] = {}
    copies: dict[str, int] = {}
    for info in sorted(infos, key=lambda i: i.get("createdTime") or 0):
        title = info.get("title") or ""
        copies[title] = copies.get(title, 0) + 1
        by_title.setdefault(title, info)
    return by_title, copies


def main() -> None:
    spec = fleet_argument_spec()
    spec.update(
        dashboards={"type": "list", "elements": "dict", "required": True},
        substitutions={"type": "dict", "default": {}},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    wanted = [wanted_dashboard(d, params["substitutions"]) for d in params["dashboards"]]
    titles = [d.get("title") for d in wanted]
    if any(not isinstance(t, str) or not t for t in titles):
        module.fail_json(msg="dashboards: every dashboard needs a title")
    if len(set(titles)) != len(titles):
        module.fail_json(msg="dashboards: duplicate titles")
    client = fleet_client(params)
    ids: dict[str, str] = {}
    created: list[str] = []
    updated: list[str] = []
    warnings: list[str] = []
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    try:
        existing, copies = oldest_by_title(list_all(client, "/api/tenant/dashboards", PAGE_SIZE))
        for dashboard in wanted:
            title = dashboard["title"]
            if copies.get(title, 0) > 1:
                warnings.append(
                    f"{copies[title]} dashboards are titled {title!r}; the oldest is managed"
                )
            info = existing.get(title)
            if info is None:
                created.append(title)
                before[title], after[title] = {}, dashboard["configuration"]
                ids[title] = ""
                if not module.check_mode:
                    ids[title] = entity_id(client.post("/api/dashboard", dashboard))
                continue
            ids[title] = entity_id(info)
            current = client.get(f"/api/dashboard/{ids[title]}")
            if current.get("configuration") == dashboard["configuration"]:
                continue
            updated.append(title)
            before[title] = current.get("configuration")
            after[title] = dashboard["configuration"]
            if not module.check_mode:
                client.post("/api/dashboard", {**current, **dashboard})
    except TbError as error:
        module.fail_json(msg=f"dashboards: {error}", requests=client.requests)
    result: dict[str, Any] = {
        "changed": bool(created or updated),
        "dashboards": ids,
        "created": created,
        "updated": updated,
        "requests": client.requests,
        "diff": {"before": before, "after": after},
    }
    if warnings:
        result["warnings"] = warnings
    module.exit_json(**result)


if __name__ == "__main__":
    main()
