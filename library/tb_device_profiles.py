#!/usr/bin/python
"""Ansible module: ensure ThingsBoard device profiles with alarm rules and a rule chain."""

from __future__ import annotations

DOCUMENTATION = r"""
module: tb_device_profiles
short_description: Ensure ThingsBoard device profiles, their alarm rules and their rule chain
description:
  - As a tenant administrator, lists the tenant's device profiles (one request) and creates or
    updates each profile of O(profiles) by name, with its description, its alarm rules
    (ThingsBoard 4.2 C(profileData.alarms)) and O(rule_chain) as C(defaultRuleChainId).
  - O(rule_chain) is looked up by name (one request); the module fails when the tenant has no
    rule chain of that name (in check mode it warns instead, since the chain's own role may
    not have run for real either).
  - A profile is compared with what ThingsBoard returns, ignoring fields ThingsBoard adds,
    and saved only when it differs. Profiles not listed are left alone (ThingsBoard refuses
    to delete a profile that devices use).
options:
  rule_chain:
    description: Name of the rule chain every profile's devices go through.
    type: str
    required: true
  profiles:
    description: The profiles.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Profile name (the devices' type).
        type: str
        required: true
      description:
        description: Profile description.
        type: str
        default: ""
      alarms:
        description:
          - "Alarm rules in ThingsBoard 4.2's form, C([{id, alarmType, createRules:
            {SEVERITY: {condition, alarmDetails}}, clearRule, propagate}]) (the
            C(tb_alarm_rules) filter makes them from the fleet's simple form)."
        type: list
        elements: dict
        default: []
notes:
  - Supports check mode and diff mode.
extends_documentation_fragment:
  - tb_connection
  - tb_connection.fleet
"""

EXAMPLES = r"""
- name: Ensure a device profile per class
  tb_device_profiles:
    url: http://127.0.0.1:8080
    username: "{{ thingsboard_tenant_admin_email }}"
    password: "{{ thingsboard_tenant_admin_password }}"
    rule_chain: TinyML devices
    profiles:
      - name: vibration
        description: vibration-cnn 1.0.0 on esp32
        alarms: >-
          {{ [{'type': 'Anomaly', 'above': 0.8, 'for_s': 30, 'clear_below': 0.5}]
             | tb_alarm_rules('vibration') }}
  no_log: true
"""

RETURN = r"""
profiles:
  description: Profile name to UUID (empty for a profile check mode would create).
  type: dict
  returned: always
created:
  description: Profiles created.
  type: list
  elements: str
  returned: always
updated:
  description: Profiles updated.
  type: list
  elements: str
  returned: always
rule_chain_id:
  description: UUID of O(rule_chain) (empty when absent in check mode).
  type: str
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
    contains,
    find_rule_chain,
    fleet_argument_spec,
    fleet_client,
    list_all,
)

PAGE_SIZE = 1000


def wanted_fields(profile: dict[str, Any], chain_id: str) -> dict[str, Any]:
    """The parts of a profile this module owns, as ThingsBoard stores them."""
    return {
        "description": profile["description"],
        "defaultRuleChainId": {"entityType": "RULE_CHAIN", "id": chain_id} if chain_id else None,
        "profileData": {"alarms": profile["alarms"]},
    }


def new_profile(profile: dict[str, Any], chain_id: str) -> dict[str, Any]:
    fields = wanted_fields(profile, chain_id)
    return {
        "name": profile["name"],
        "description": fields["description"],
        "type": "DEFAULT",
        "transportType": "DEFAULT",
        "provisionType": "DISABLED",
        "defaultRuleChainId": fields["defaultRuleChainId"],
        "profileData": {
            "configuration": {"type": "DEFAULT"},
            "transportConfiguration": {"type": "DEFAULT"},
            "provisionConfiguration": {"type": "DISABLED"},
            "alarms": profile["alarms"],
        },
    }


def updated_profile(existing: dict[str, Any], profile: dict[str, Any], chain_id: str) -> Any:
    fields = wanted_fields(profile, chain_id)
    data = dict(existing.get("profileData") or {})
    data["alarms"] = profile["alarms"]
    return {
        **existing,
        "description": fields["description"],
        "defaultRuleChainId": fields["defaultRuleChainId"],
        "profileData": data,
    }


def shown(profile: dict[str, Any] | None) -> dict[str, Any]:
    """What the diff shows of a profile."""
    if profile is None:
        return {}
    return {
        "description": profile.get("description"),
        "defaultRuleChainId": (profile.get("defaultRuleChainId") or {}).get("id"),
        "alarms": (profile.get("profileData") or {}).get("alarms"),
    }


def main() -> None:
    spec = fleet_argument_spec()
    spec.update(
        rule_chain={"type": "str", "required": True},
        profiles={
            "type": "list",
            "elements": "dict",
            "required": True,
            "options": {
                "name": {"type": "str", "required": True},
                "description": {"type": "str", "default": ""},
                "alarms": {"type": "list", "elements": "dict", "default": []},
            },
        },
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    names = [p["name"] for p in params["profiles"]]
    if len(set(names)) != len(names):
        module.fail_json(msg="profiles: duplicate names")
    client = fleet_client(params)
    created: list[str] = []
    updated: list[str] = []
    ids: dict[str, str] = {}
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    warnings: list[str] = []
    chain_id = ""
    try:
        chain = find_rule_chain(client, params["rule_chain"])
        if chain is None:
            message = (
                f"no rule chain named {params['rule_chain']!r} in the tenant: the gateway role"
                " imports it (run it first, or set the chain's name)"
            )
            if not module.check_mode:
                module.fail_json(msg=message, requests=client.requests)
            warnings.append(message)
        else:
            chain_id = entity_id(chain)
        existing = {p["name"]: p for p in list_all(client, "/api/deviceProfiles", PAGE_SIZE)}
        for profile in params["profiles"]:
            name = profile["name"]
            current = existing.get(name)
            if current is None:
                created.append(name)
                body = new_profile(profile, chain_id)
                before[name], after[name] = {}, shown(body)
                if not module.check_mode:
                    ids[name] = entity_id(client.post("/api/deviceProfile", body))
                else:
                    ids[name] = ""
                continue
            ids[name] = entity_id(current)
            if contains(current, wanted_fields(profile, chain_id)):
                continue
            updated.append(name)
            body = updated_profile(current, profile, chain_id)
            before[name], after[name] = shown(current), shown(body)
            if not module.check_mode:
                client.post("/api/deviceProfile", body)
    except TbError as error:
        module.fail_json(msg=f"device profiles: {error}", requests=client.requests)
    result: dict[str, Any] = {
        "changed": bool(created or updated),
        "profiles": ids,
        "created": created,
        "updated": updated,
        "rule_chain_id": chain_id,
        "requests": client.requests,
        "diff": {"before": before, "after": after},
    }
    if warnings:
        result["warnings"] = warnings
    module.exit_json(**result)


if __name__ == "__main__":
    main()
