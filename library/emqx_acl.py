#!/usr/bin/python
"""Ansible module: ensure per-username rules of EMQX's built-in authorization database."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: emqx_acl
short_description: Ensure per-username rules in the EMQX built-in authorization database
description:
  - Lists every username's rules (10,000 usernames per request), creates the rules of new
    usernames with one C(POST .../rules/users) per batch, replaces changed ones with
    C(PUT .../rules/users/{username}) and deletes usernames that match I(purge_pattern)
    but are not listed.
  - EMQX checks rules in order, first match wins, so the order is compared exactly. A rule
    without I(qos) or I(retain) is compared with EMQX's defaults (C([0,1,2]) and C(all)),
    which is how EMQX lists it.
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
  rules:
    description: The usernames and their ordered rules.
    type: list
    elements: dict
    default: []
    suboptions:
      username:
        description: MQTT username.
        type: str
        required: true
      rules:
        description: Ordered rules (EMQX allows 100 per username by default).
        type: list
        elements: dict
        required: true
        suboptions:
          topic:
            description: Topic filter; C(eq ) prefix for an exact filter match.
            type: str
            required: true
          permission:
            description: Allow or deny.
            type: str
            required: true
            choices: [allow, deny]
          action:
            description: Which action the rule covers.
            type: str
            required: true
            choices: [publish, subscribe, all]
          qos:
            description: QoS levels the rule covers (EMQX default all three).
            type: list
            elements: int
          retain:
            description: C(true), C(false) or C(all) (publish only; EMQX default C(all)).
            type: raw
  purge_pattern:
    description:
      - Python regular expression; usernames whose whole name matches it, that have rules and
        are not in I(rules) lose their rules (one request each).
    type: str
  batch_size:
    description: Usernames per create request.
    type: int
    default: 2000
author: TinyML fleet project
"""

EXAMPLES = r"""
- name: Device rules (architecture.md, broker authorization)
  emqx_acl:
    api_url: "http://emqx-1.emqx.tinyml:18083"
    api_key: ansible
    api_secret: "{{ emqx_api_secret }}"
    rules:
      - username: lab-vm2-vibration-00001
        rules:
          - {topic: "tinyml/devices/lab-vm2-vibration-00001/#", permission: allow, action: all}
          - {topic: "tinyml/classes/vibration/ota", permission: allow, action: subscribe}
    purge_pattern: "lab-vm2-.*"
  delegate_to: localhost
"""

RETURN = r"""
created:
  description: Usernames whose rules were created.
  returned: always
  type: list
  elements: str
updated:
  description: Usernames whose rules were replaced.
  returned: always
  type: list
  elements: str
deleted:
  description: Usernames whose rules were deleted.
  returned: always
  type: list
  elements: str
created_count:
  description: Number of usernames created.
  returned: always
  type: int
updated_count:
  description: Number of usernames updated.
  returned: always
  type: int
deleted_count:
  description: Number of usernames deleted.
  returned: always
  type: int
existing_count:
  description: Number of usernames that had rules before the run.
  returned: always
  type: int
requests:
  description: HTTP requests made (retries included).
  returned: always
  type: int
"""

import re  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.emqx_api import (  # noqa: E402
    EmqxError,
    FleetModule,
    client_from_params,
    common_argument_spec,
    exit_compact,
    quote_segment,
)

RULES_PATH = "/authorization/sources/built_in_database/rules/users"
DEFAULT_QOS = [0, 1, 2]


def request_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """The rule as sent: only the keys the user gave (None means EMQX's default)."""
    out = {"topic": rule["topic"], "permission": rule["permission"], "action": rule["action"]}
    if rule.get("qos") is not None:
        out["qos"] = [int(q) for q in rule["qos"]]
    if rule.get("retain") is not None:
        out["retain"] = normalize_retain(rule["retain"])
    return out


def normalize_retain(value: Any) -> bool | str:
    if value in (None, "all"):
        return "all"
    if value in (True, "true", "True", 1, "1"):
        return True
    if value in (False, "false", "False", 0, "0"):
        return False
    raise ValueError(f"retain must be true, false or all, not {value!r}")


def comparable(rule: dict[str, Any]) -> tuple[Any, ...]:
    """A rule as EMQX lists it (defaults filled in), for an exact, ordered comparison."""
    qos = rule.get("qos")
    return (
        rule["topic"],
        rule["permission"],
        {"pub": "publish", "sub": "subscribe"}.get(rule["action"], rule["action"]),
        tuple(int(q) for q in (DEFAULT_QOS if qos is None else qos)),
        normalize_retain(rule.get("retain")),
    )


def plan(
    existing: dict[str, list[dict[str, Any]]],
    wanted: list[dict[str, Any]],
    purge_pattern: str | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    create, update = [], []
    for entry in wanted:
        body = {"username": entry["username"], "rules": [request_rule(r) for r in entry["rules"]]}
        current = existing.get(entry["username"])
        if current is None:
            create.append(body)
        elif [comparable(r) for r in current] != [comparable(r) for r in body["rules"]]:
            update.append(body)
    listed = {entry["username"] for entry in wanted}
    delete = []
    if purge_pattern:
        pattern = re.compile(purge_pattern)
        delete = sorted(n for n in existing if n not in listed and pattern.fullmatch(n))
    return create, update, delete


def run(module: AnsibleModule) -> dict[str, Any]:
    params = module.params
    client = client_from_params(params)
    wanted = params["rules"]
    names = [entry["username"] for entry in wanted]
    if len(set(names)) != len(names):
        module.fail_json(msg="rules: duplicate username")
    existing = {e["username"]: e.get("rules", []) for e in client.get_all(RULES_PATH)}
    try:
        create, update, delete = plan(existing, wanted, params["purge_pattern"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    changed = bool(create or update or delete)
    if changed and not module.check_mode:
        size = params["batch_size"]
        for start in range(0, len(create), size):
            client.request("POST", RULES_PATH, body=create[start : start + size])
        for body in update:
            client.request("PUT", f"{RULES_PATH}/{quote_segment(body['username'])}", body=body)
        for name in delete:
            client.request("DELETE", f"{RULES_PATH}/{quote_segment(name)}")
    result: dict[str, Any] = {
        "changed": changed,
        "created": [b["username"] for b in create],
        "updated": [b["username"] for b in update],
        "deleted": delete,
        "created_count": len(create),
        "updated_count": len(update),
        "deleted_count": len(delete),
        "existing_count": len(existing),
        "requests": client.requests,
    }
    if module._diff:
        lines = [f"+ {b['username']}: {len(b['rules'])} rules" for b in create]
        for body in update:
            before = [list(comparable(r)) for r in existing[body["username"]]]
            after = [list(comparable(r)) for r in body["rules"]]
            lines.append(f"~ {body['username']}: {before} -> {after}")
        lines += [f"- {name}" for name in delete]
        result["diff"] = {"prepared": "\n".join(lines) + ("\n" if lines else "")}
    return result


def shown_args(params: dict[str, Any]) -> dict[str, Any]:
    """The module arguments echoed back: the rules list as a count (see exit_compact)."""
    shown = {k: v for k, v in params.items() if k not in ("api_secret", "rules")}
    shown["rules"] = f"{len(params['rules'])} entries"
    return shown


def main() -> None:
    rule_options = {
        "topic": {"type": "str", "required": True},
        "permission": {"type": "str", "required": True, "choices": ["allow", "deny"]},
        "action": {"type": "str", "required": True, "choices": ["publish", "subscribe", "all"]},
        "qos": {"type": "list", "elements": "int"},
        "retain": {"type": "raw"},
    }
    argument_spec = common_argument_spec()
    argument_spec.update(
        rules={
            "type": "list",
            "elements": "dict",
            "default": [],
            "options": {
                "username": {"type": "str", "required": True},
                "rules": {
                    "type": "list",
                    "elements": "dict",
                    "required": True,
                    "options": rule_options,
                },
            },
        },
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
