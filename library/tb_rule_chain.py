#!/usr/bin/python
"""Ansible module: ensure a ThingsBoard rule chain from its export format."""

from __future__ import annotations

DOCUMENTATION = r"""
module: tb_rule_chain
short_description: Ensure a ThingsBoard rule chain, imported by name
description:
  - O(chain) is a rule chain in ThingsBoard's export form (C({ruleChain, metadata})),
    with nodes (type, name, configuration) and connections by node index.
  - Finds the tenant's chain by name; imports it when absent
    (C(POST /api/ruleChains/import)); when present, compares nodes and connections (by node
    name, ignoring ids and layout) and imports it over the existing one only when they
    differ. Node names must be unique within the chain.
options:
  chain:
    description:
      - The rule chain in export form,
        C({ruleChain:{name,...}, metadata:{nodes, connections, firstNodeIndex}}).
    type: dict
    required: true
notes:
  - Supports check mode and diff mode.
extends_documentation_fragment:
  - tb_connection
"""

EXAMPLES = r"""
- name: Ensure the TinyML device rule chain
  tb_rule_chain:
    url: http://127.0.0.1:8080
    username: "{{ thingsboard_tenant_admin_email }}"
    password: "{{ thingsboard_tenant_admin_password }}"
    chain: "{{ lookup('ansible.builtin.template', 'rule_chain.json.j2') | from_json }}"
  no_log: true
"""

RETURN = r"""
rule_chain_id:
  description: The chain's UUID (empty in check mode when it would be created).
  type: str
  returned: always
requests:
  description: HTTP requests sent.
  type: int
  returned: always
"""

import uuid  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.tb_api import (  # noqa: E402
    TbClient,
    TbError,
    client_from_params,
    common_argument_spec,
    entity_id,
)

NODE_FIELDS = ("type", "name", "configuration", "debugMode", "singletonMode")


def comparable(metadata: dict[str, Any]) -> dict[str, Any]:
    """Nodes and connections without ids, versions or layout; connections by node name."""
    nodes = metadata.get("nodes") or []
    names = [node["name"] for node in nodes]
    first = metadata.get("firstNodeIndex")
    return {
        "first": names[first] if isinstance(first, int) and 0 <= first < len(names) else None,
        "nodes": sorted(
            ({field: node.get(field, False) for field in NODE_FIELDS} for node in nodes),
            key=lambda node: node["name"],
        ),
        "connections": sorted(
            (names[c["fromIndex"]], names[c["toIndex"]], c["type"])
            for c in metadata.get("connections") or []
        ),
    }


def find_chain(client: TbClient, name: str) -> dict[str, Any] | None:
    for chain in client.get_all("/api/ruleChains", {"type": "CORE", "textSearch": name}):
        if chain.get("name") == name:
            found: dict[str, Any] = chain
            return found
    return None


def import_body(chain: dict[str, Any]) -> dict[str, Any]:
    """The import request: one chain, its metadata paired to it by a fresh id."""
    chain_id = {"entityType": "RULE_CHAIN", "id": str(uuid.uuid4())}
    rule_chain = {"type": "CORE", "root": False, "debugMode": False, **chain["ruleChain"]}
    metadata = {"ruleChainConnections": [], **chain["metadata"]}
    return {
        "ruleChains": [{**rule_chain, "id": chain_id}],
        "metadata": [{**metadata, "ruleChainId": chain_id}],
    }


def main() -> None:
    spec = common_argument_spec()
    spec["chain"] = {"type": "dict", "required": True}
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    chain = module.params["chain"]
    name = chain["ruleChain"]["name"]
    client = client_from_params(module.params)
    wanted = comparable(chain["metadata"])
    before: dict[str, Any] = {}
    chain_id = ""
    try:
        existing = find_chain(client, name)
        if existing is not None:
            chain_id = entity_id(existing)
            before = comparable(client.get(f"/api/ruleChain/{chain_id}/metadata"))
        changed = before != wanted
        if changed and not module.check_mode:
            results = client.post(
                "/api/ruleChains/import",
                import_body(chain),
                query={"overwrite": existing is not None},
            )
            failures = [r for r in results if not r.get("success", True)]
            if failures:
                module.fail_json(msg=f"rule chain {name}: import failed: {failures}")
            chain_id = entity_id(find_chain(client, name) or {"id": {"id": ""}})
    except TbError as error:
        module.fail_json(msg=f"rule chain {name}: {error}", requests=client.requests)
    module.exit_json(
        changed=changed,
        rule_chain_id=chain_id,
        requests=client.requests,
        diff={"before": before, "after": wanted},
    )


if __name__ == "__main__":
    main()
