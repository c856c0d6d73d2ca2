#!/usr/bin/python
"""Ansible module: ensure one ThingsBoard device and its access token."""

from __future__ import annotations

DOCUMENTATION = r"""
module: tb_device
short_description: Ensure one ThingsBoard device (e.g. a gateway) and its access token
description:
  - As a tenant administrator, finds the device by name and creates it when absent, with
    its device profile (O(profile)), label and gateway flag; updates those when they differ.
  - Its credentials become an access token equal to O(access_token), which Ansible
    generates and keeps, so the token never has to be read back from ThingsBoard.
  - For fleets, use the bulk provisioning modules instead; this one sends a few requests
    per device.
options:
  name:
    description: Device name.
    type: str
    required: true
  profile:
    description: Device profile name (ThingsBoard's device "type").
    type: str
    default: default
  label:
    description: Device label.
    type: str
    default: ""
  gateway:
    description: Whether the device is a gateway (additionalInfo.gateway).
    type: bool
    default: false
  access_token:
    description: The device's access token.
    type: str
    required: true
notes:
  - Supports check mode.
extends_documentation_fragment:
  - tb_connection
"""

EXAMPLES = r"""
- name: Ensure the IoT Gateway's device
  tb_device:
    url: http://127.0.0.1:8080
    username: "{{ thingsboard_tenant_admin_email }}"
    password: "{{ thingsboard_tenant_admin_password }}"
    name: tinyml-gateway
    gateway: true
    access_token: "{{ tb_gateway_access_token }}"
  no_log: true
"""

RETURN = r"""
device_id:
  description: The device's UUID (empty in check mode when it would be created).
  type: str
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
    entity_id,
)


def desired_fields(params: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": params["name"],
        "type": params["profile"],
        "label": params["label"],
        "additionalInfo": {"gateway": params["gateway"]},
    }


def differs(device: dict[str, Any], wanted: dict[str, Any]) -> bool:
    info = device.get("additionalInfo") or {}
    return bool(
        device.get("type") != wanted["type"]
        or (device.get("label") or "") != wanted["label"]
        or bool(info.get("gateway", False)) != wanted["additionalInfo"]["gateway"]
    )


def ensure_token(client: TbClient, device_id: str, token: str, check_mode: bool) -> bool:
    credentials = client.get(f"/api/device/{device_id}/credentials")
    if (
        credentials.get("credentialsType") == "ACCESS_TOKEN"
        and credentials.get("credentialsId") == token
    ):
        return False
    if not check_mode:
        client.post(
            "/api/device/credentials",
            {**credentials, "credentialsType": "ACCESS_TOKEN", "credentialsId": token},
        )
    return True


def main() -> None:
    spec = common_argument_spec()
    spec.update(
        name={"type": "str", "required": True},
        profile={"type": "str", "default": "default"},
        label={"type": "str", "default": ""},
        gateway={"type": "bool", "default": False},
        access_token={"type": "str", "required": True, "no_log": True},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    client = client_from_params(params)
    wanted = desired_fields(params)
    changed = False
    device_id = ""
    try:
        device = client.find("/api/tenant/device", {"deviceName": params["name"]})
        if device is None:
            changed = True
            if not module.check_mode:
                created = client.post(
                    "/api/device", wanted, query={"accessToken": params["access_token"]}
                )
                device_id = entity_id(created)
        else:
            device_id = entity_id(device)
            if differs(device, wanted):
                changed = True
                if not module.check_mode:
                    client.post("/api/device", {**device, **wanted})
            changed |= ensure_token(client, device_id, params["access_token"], module.check_mode)
    except TbError as error:
        module.fail_json(msg=f"device {params['name']}: {error}", requests=client.requests)
    module.exit_json(changed=changed, device_id=device_id, requests=client.requests)


if __name__ == "__main__":
    main()
