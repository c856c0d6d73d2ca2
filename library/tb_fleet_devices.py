#!/usr/bin/python
"""Ansible module: ensure a fleet of ThingsBoard devices and their server attributes, in bulk."""

from __future__ import annotations

DOCUMENTATION = r"""
module: tb_fleet_devices
short_description: Ensure a fleet of ThingsBoard devices with server attributes, in bulk
description:
  - As a tenant administrator, lists every device of the tenant in pages of O(page_size)
    (one request for up to that many devices), then creates the missing devices and updates
    the ones whose type or attributes differ with C(POST /api/device/bulk_import) (CSV with
    C(SERVER_ATTRIBUTE) columns and the update flag), O(batch_size) devices per request. A
    device is never created or updated with a request of its own.
  - The module marks the devices it manages with their description (C(additionalInfo.description))
    is O(marker) followed by the JSON of the attributes it set. That is how a re-run sees,
    from the listing alone, which devices need an update, and how devices that left
    O(devices) are found (only devices carrying the marker are ever decommissioned or
    deleted). Attributes changed in ThingsBoard by hand are not noticed (reading them back
    would take one request per device).
  - Devices that left O(devices) are handled by O(absent) - C(decommission) sets the server
    attribute C(decommissioned=true) (bulk, a few requests), C(delete) deletes them
    (ThingsBoard has no bulk delete, so one request per device), C(keep) leaves them.
    Listed devices carry C(decommissioned=false), so a device that comes back is
    re-activated.
  - An existing device of a listed name without the marker (say, created by the IoT
    Gateway before provisioning) is adopted - updated and marked.
  - A failure midway (a batch refused, a request that fails after its retries) leaves the
    devices of the batches already imported; the next run lists them and imports only the
    rest, so there are never duplicates.
options:
  devices:
    description: The devices.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Device name.
        type: str
        required: true
      type:
        description: Device profile name (the profile must exist).
        type: str
        required: true
      attributes:
        description: Server attributes (strings, numbers or booleans).
        type: dict
        default: {}
  marker:
    description: First word of the description of managed devices.
    type: str
    default: tinyml-fleet
  absent:
    description: What happens to managed devices that are not in O(devices).
    type: str
    choices: [decommission, delete, keep]
    default: decommission
  batch_size:
    description: Devices per bulk import request.
    type: int
    default: 5000
  page_size:
    description: Devices per listing request.
    type: int
    default: 10000
  summarize:
    description:
      - Attribute keys whose distinct values among all managed devices (listed or not) are
        returned in RV(owned_values), e.g. the nodes and classes that own device names.
    type: list
    elements: str
    default: []
notes:
  - Supports check mode and diff mode.
extends_documentation_fragment:
  - tb_connection
  - tb_connection.fleet
"""

EXAMPLES = r"""
- name: Ensure the fleet's devices
  tb_fleet_devices:
    url: http://127.0.0.1:8080
    username: "{{ thingsboard_tenant_admin_email }}"
    password: "{{ thingsboard_tenant_admin_password }}"
    devices:
      - name: lab-vm1-vibration-00001
        type: vibration
        attributes: {class: vibration, node: lab-vm1, model: vibration-cnn, model_version: 1.0.0}
    absent: decommission
  no_log: true
"""

RETURN = r"""
created:
  description: Devices created.
  type: list
  elements: str
  returned: always
updated:
  description: Devices whose type or attributes were updated (decommissioned ones not included).
  type: list
  elements: str
  returned: always
decommissioned:
  description: Managed devices marked decommissioned in this run.
  type: list
  elements: str
  returned: always
deleted:
  description: Managed devices deleted in this run.
  type: list
  elements: str
  returned: always
created_count:
  description: Number of devices created.
  type: int
  returned: always
updated_count:
  description: Number of devices updated.
  type: int
  returned: always
decommissioned_count:
  description: Number of devices decommissioned.
  type: int
  returned: always
deleted_count:
  description: Number of devices deleted.
  type: int
  returned: always
existing_count:
  description: Devices of the tenant before the run (managed or not).
  type: int
  returned: always
managed_count:
  description: Devices carrying the marker before the run.
  type: int
  returned: always
owned_values:
  description: For each key of O(summarize), its distinct values among managed and listed devices.
  type: dict
  returned: always
requests:
  description: HTTP requests sent (retries included).
  type: int
  returned: always
"""

import csv  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
from collections import Counter  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.tb_api import TbClient, TbError, entity_id  # noqa: E402
from ansible.module_utils.tb_fleet import (  # noqa: E402
    FleetModule,
    fleet_argument_spec,
    fleet_client,
    list_all,
)

DECOMMISSIONED = "decommissioned"
SCALARS = (str, int, float, bool)


def description(marker: str, attributes: dict[str, Any]) -> str:
    return f"{marker} " + json.dumps(attributes, sort_keys=True, separators=(",", ":"))


def managed_attributes(device: dict[str, Any], marker: str) -> dict[str, Any] | None:
    """The attributes the module last set on a device, None when it does not manage it."""
    info = device.get("additionalInfo")
    text = info.get("description") if isinstance(info, dict) else None
    if not isinstance(text, str) or not text.startswith(marker + " "):
        return None
    try:
        attributes = json.loads(text[len(marker) + 1 :])
    except ValueError:
        return {}
    return attributes if isinstance(attributes, dict) else {}


def cell(value: Any) -> str:
    """A CSV cell as ThingsBoard parses it back (booleans, numbers, strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def import_csv(rows: list[dict[str, Any]], marker: str) -> tuple[str, list[dict[str, Any]]]:
    """(CSV text, column mapping) of rows {name, type, attributes}."""
    keys = sorted({key for row in rows for key in row["attributes"]})
    columns = [{"type": "NAME"}, {"type": "TYPE"}, {"type": "DESCRIPTION"}]
    columns += [{"type": "SERVER_ATTRIBUTE", "key": key} for key in keys]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["name", "type", "description", *keys])
    for row in rows:
        attributes = row["attributes"]
        writer.writerow(
            [
                row["name"],
                row["type"],
                description(marker, attributes),
                *(cell(attributes[k]) if k in attributes else "" for k in keys),
            ]
        )
    return out.getvalue(), columns


def bulk_import(
    client: TbClient, rows: list[dict[str, Any]], marker: str, batch_size: int
) -> dict[str, int]:
    totals = {"created": 0, "updated": 0}
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        text, columns = import_csv(batch, marker)
        body = {
            "file": text,
            "mapping": {"columns": columns, "delimiter": ",", "update": True, "header": True},
        }
        result = client.post("/api/device/bulk_import", body)
        errors = (result or {}).get("errors", 0)
        if errors:
            shown = "; ".join((result.get("errorsList") or [])[:5])
            raise TbError(
                200,
                "BULK_IMPORT",
                f"{errors} of {len(batch)} rows refused (rows {start + 1}-{start + len(batch)}"
                f" of this run): {shown}",
                "POST",
                "/api/device/bulk_import",
            )
        totals["created"] += int(result.get("created", 0))
        totals["updated"] += int(result.get("updated", 0))
    return totals


def plan(
    existing: dict[str, dict[str, Any]],
    wanted: list[dict[str, Any]],
    marker: str,
    absent: str,
) -> dict[str, list[Any]]:
    create, update, decommission, delete = [], [], [], []
    listed = set()
    for device in wanted:
        name = device["name"]
        listed.add(name)
        row = {
            "name": name,
            "type": device["type"],
            "attributes": {**device["attributes"], DECOMMISSIONED: False},
        }
        current = existing.get(name)
        if current is None:
            create.append(row)
        elif (
            current.get("type") != row["type"]
            or managed_attributes(current, marker) != row["attributes"]
        ):
            update.append(row)
    if absent != "keep":
        for name in sorted(set(existing) - listed):
            current = existing[name]
            attributes = managed_attributes(current, marker)
            if attributes is None:
                continue
            if absent == "delete":
                delete.append(current)
            elif attributes.get(DECOMMISSIONED) is not True:
                attributes = {**attributes, DECOMMISSIONED: True}
                decommission.append(
                    {"name": name, "type": current.get("type"), "attributes": attributes}
                )
    return {"create": create, "update": update, "decommission": decommission, "delete": delete}


def summarize(
    existing: dict[str, dict[str, Any]],
    wanted: list[dict[str, Any]],
    marker: str,
    keys: list[str],
) -> dict[str, list[str]]:
    values: dict[str, set[str]] = {key: set() for key in keys}
    sources = [d["attributes"] for d in wanted]
    sources += [a for a in (managed_attributes(d, marker) for d in existing.values()) if a]
    for attributes in sources:
        for key in keys:
            if attributes.get(key) is not None:
                values[key].add(str(attributes[key]))
    return {key: sorted(found) for key, found in values.items()}


def check_input(module: AnsibleModule) -> None:
    counts = Counter(d["name"] for d in module.params["devices"])
    duplicates = sorted(name for name, count in counts.items() if count > 1)
    if duplicates:
        module.fail_json(msg=f"devices: duplicate names {duplicates[:10]}")
    for device in module.params["devices"]:
        for key, value in device["attributes"].items():
            if not isinstance(value, SCALARS) or value is None:
                module.fail_json(
                    msg=f"device {device['name']}: attribute {key} must be a string, number or"
                    f" boolean, got {value!r}"
                )
    if module.params["batch_size"] < 1 or module.params["page_size"] < 1:
        module.fail_json(msg="batch_size and page_size must be at least 1")
    if not module.params["marker"] or " " in module.params["marker"]:
        module.fail_json(msg="marker: one word")


def diff_lines(steps: dict[str, list[Any]], existing: dict[str, dict[str, Any]]) -> str:
    lines = [f"+ {row['name']} ({row['type']})" for row in steps["create"]]
    for row in steps["update"]:
        current = existing[row["name"]]
        lines.append(
            f"~ {row['name']}: {current.get('type')} -> {row['type']}, {row['attributes']}"
        )
    lines += [f"- {row['name']} (decommission)" for row in steps["decommission"]]
    lines += [f"- {device['name']} (delete)" for device in steps["delete"]]
    return "\n".join(lines) + ("\n" if lines else "")


def shown_args(params: dict[str, Any]) -> dict[str, Any]:
    """The module arguments echoed back: the device list as a count."""
    shown = {k: v for k, v in params.items() if k not in ("password", "token", "devices")}
    shown["devices"] = f"{len(params['devices'])} entries"
    return shown


def main() -> None:
    spec = fleet_argument_spec()
    spec.update(
        devices={
            "type": "list",
            "elements": "dict",
            "required": True,
            "options": {
                "name": {"type": "str", "required": True},
                "type": {"type": "str", "required": True},
                "attributes": {"type": "dict", "default": {}},
            },
        },
        marker={"type": "str", "default": "tinyml-fleet"},
        absent={
            "type": "str",
            "choices": ["decommission", "delete", "keep"],
            "default": "decommission",
        },
        batch_size={"type": "int", "default": 5000},
        page_size={"type": "int", "default": 10000},
        summarize={"type": "list", "elements": "str", "default": []},
    )
    module = FleetModule(argument_spec=spec, supports_check_mode=True)
    check_input(module)
    params = module.params
    marker = params["marker"]
    client = fleet_client(params)
    try:
        existing = {
            d["name"]: d for d in list_all(client, "/api/tenant/devices", params["page_size"])
        }
        steps = plan(existing, params["devices"], marker, params["absent"])
        changed = any(steps.values())
        if changed and not module.check_mode:
            rows = steps["create"] + steps["update"] + steps["decommission"]
            bulk_import(client, rows, marker, params["batch_size"])
            for device in steps["delete"]:
                client.request("DELETE", f"/api/device/{entity_id(device)}")
    except TbError as error:
        module.fail_json(msg=f"fleet devices: {error}", requests=client.requests)
    managed = sum(1 for d in existing.values() if managed_attributes(d, marker) is not None)
    result: dict[str, Any] = {
        "changed": changed,
        "created": [r["name"] for r in steps["create"]],
        "updated": [r["name"] for r in steps["update"]],
        "decommissioned": [r["name"] for r in steps["decommission"]],
        "deleted": [d["name"] for d in steps["delete"]],
        "created_count": len(steps["create"]),
        "updated_count": len(steps["update"]),
        "decommissioned_count": len(steps["decommission"]),
        "deleted_count": len(steps["delete"]),
        "existing_count": len(existing),
        "managed_count": managed,
        "owned_values": summarize(existing, params["devices"], marker, params["summarize"]),
        "requests": client.requests,
        "invocation": {"module_args": shown_args(params)},
    }
    if module._diff:
        result["diff"] = {"prepared": diff_lines(steps, existing)}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
