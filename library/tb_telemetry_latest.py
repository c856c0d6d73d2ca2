#!/usr/bin/python
"""Ansible module: the latest time series values of ThingsBoard devices, by device name."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tb_telemetry_latest
short_description: Read the latest time series of ThingsBoard devices by name
description:
  - As a tenant administrator, finds each device of O(devices) by name (unless O(ids)
    already knows it) and reads the latest value of each key of O(keys)
    (C(GET /api/plugins/telemetry/DEVICE/{id}/values/timeseries), strict data types).
  - Two requests per device on the first call, one on later calls that pass back RV(ids).
    Devices ThingsBoard does not know are listed in RV(missing), not an error.
  - Read-only; never reports a change.
options:
  devices:
    description: Device names.
    type: list
    elements: str
    required: true
  keys:
    description: Time series keys to read.
    type: list
    elements: str
    required: true
  ids:
    description: Device name to device id, from an earlier call's RV(ids).
    type: dict
    default: {}
author: TinyML fleet project
extends_documentation_fragment:
  - tb_connection
  - tb_connection.fleet
"""

EXAMPLES = r"""
- name: Read what the canaries report
  tb_telemetry_latest:
    url: http://127.0.0.1:8080
    username: "{{ tenant_admin }}"
    password: "{{ tenant_admin_password }}"
    devices: [lab-vm2-vibration-00007]
    keys: [model_version, outcome, version, errors]
  register: latest
"""

RETURN = r"""
telemetry:
  description: >-
    Device name to key to C({ts, value}) (ts in ms, the device's timestamp as the gateway
    forwarded it); keys a device never reported are absent.
  returned: always
  type: dict
ids:
  description: Device name to ThingsBoard device id, for the next call.
  returned: always
  type: dict
missing:
  description: Devices ThingsBoard does not know.
  returned: always
  type: list
  elements: str
now_ms:
  description: This host's clock when the values had been read, ms since the epoch.
  returned: always
  type: int
requests:
  description: HTTP requests sent (retries included).
  returned: always
  type: int
"""

import time  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.tb_api import TbClient, TbError, entity_id  # noqa: E402
from ansible.module_utils.tb_fleet import fleet_argument_spec, fleet_client  # noqa: E402


def latest_values(body: Any) -> dict[str, dict[str, Any]]:
    """ThingsBoard's ``{key: [{ts, value}, ...]}`` -> ``{key: {ts, value}}`` (newest)."""
    values: dict[str, dict[str, Any]] = {}
    if not isinstance(body, dict):
        return values
    for key, entries in body.items():
        if isinstance(entries, list) and entries and isinstance(entries[0], dict):
            newest = max(entries, key=lambda e: int(e.get("ts") or 0))
            values[str(key)] = {"ts": int(newest.get("ts") or 0), "value": newest.get("value")}
    return values


def device_id(client: TbClient, name: str, ids: dict[str, str]) -> str | None:
    known = ids.get(name)
    if known:
        return known
    device = client.find("/api/tenant/device", {"deviceName": name})
    if device is None:
        return None
    ids[name] = entity_id(device)
    return ids[name]


def read(
    client: TbClient, devices: list[str], keys: list[str], ids: dict[str, str]
) -> tuple[dict[str, Any], list[str]]:
    telemetry: dict[str, Any] = {}
    missing: list[str] = []
    query = {"keys": ",".join(keys), "useStrictDataTypes": True}
    for name in devices:
        found = device_id(client, name, ids)
        if found is None:
            missing.append(name)
            continue
        try:
            body = client.get(f"/api/plugins/telemetry/DEVICE/{found}/values/timeseries", query)
        except TbError as error:
            if error.status != 404:
                raise
            # Deleted since an earlier call: forget the id, report the device missing.
            ids.pop(name, None)
            missing.append(name)
            continue
        telemetry[name] = latest_values(body)
    return telemetry, missing


def main() -> None:
    spec = fleet_argument_spec()
    spec.update(
        devices={"type": "list", "elements": "str", "required": True},
        keys={"type": "list", "elements": "str", "required": True, "no_log": False},
        ids={"type": "dict", "default": {}},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    if not params["keys"]:
        module.fail_json(msg="keys: name at least one time series key")
    client = fleet_client(params)
    ids = {str(k): str(v) for k, v in (params["ids"] or {}).items()}
    try:
        telemetry, missing = read(client, params["devices"], params["keys"], ids)
    except TbError as error:
        module.fail_json(msg=str(error), requests=client.requests)
    module.exit_json(
        changed=False,
        telemetry=telemetry,
        ids={name: ids[name] for name in params["devices"] if name in ids},
        missing=missing,
        now_ms=int(time.time() * 1000),
        requests=client.requests,
    )


if __name__ == "__main__":
    main()
