#!/usr/bin/python
"""Ansible module: read the nodes of an EMQX cluster."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: emqx_cluster_info
short_description: Read the nodes of an EMQX cluster (GET /api/v5/nodes)
description:
  - Returns every node the API reports with its status, and whether all expected nodes
    are running. Read-only; never changes anything.
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
  expected_nodes:
    description:
      - Node names that must be running, e.g. C(emqx@emqx-1.emqx.tinyml). When empty,
        I(all_running) tells whether every reported node runs.
    type: list
    elements: str
    default: []
author: TinyML fleet project
"""

EXAMPLES = r"""
- name: Wait until all EMQX nodes run
  emqx_cluster_info:
    api_url: "http://emqx-1.emqx.tinyml:18083"
    api_key: ansible
    api_secret: "{{ emqx_api_secret }}"
    expected_nodes: "{{ groups['emqx'] | map('regex_replace', '^', 'emqx@') | list }}"
  register: emqx_cluster
  until: emqx_cluster.all_running
  retries: 30
  delay: 5
  delegate_to: localhost
"""

RETURN = r"""
nodes:
  description: Nodes as EMQX reports them (node, node_status, version, uptime, connections...).
  returned: always
  type: list
  elements: dict
running:
  description: Names of the running nodes.
  returned: always
  type: list
  elements: str
stopped:
  description: Names of reported nodes that are not running.
  returned: always
  type: list
  elements: str
missing:
  description: Expected nodes the API does not report at all.
  returned: always
  type: list
  elements: str
all_running:
  description: Every expected node (or every node, if none expected) is running.
  returned: always
  type: bool
requests:
  description: HTTP requests made.
  returned: always
  type: int
"""

from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.emqx_api import (  # noqa: E402
    EmqxError,
    client_from_params,
    common_argument_spec,
)


def summarize(nodes: list[dict[str, Any]], expected: list[str]) -> dict[str, Any]:
    running = [n["node"] for n in nodes if n.get("node_status") == "running"]
    stopped = [n["node"] for n in nodes if n.get("node_status") != "running"]
    reported = {n["node"] for n in nodes}
    missing = [name for name in expected if name not in reported]
    targets = expected or [n["node"] for n in nodes]
    all_running = bool(targets) and all(name in running for name in targets)
    return {
        "running": running,
        "stopped": stopped,
        "missing": missing,
        "all_running": all_running,
    }


def main() -> None:
    argument_spec = common_argument_spec()
    argument_spec.update(expected_nodes={"type": "list", "elements": "str", "default": []})
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    client = client_from_params(module.params)
    try:
        _, nodes = client.request("GET", "/nodes")
    except EmqxError as exc:
        module.fail_json(msg=str(exc), status=exc.status, code=exc.code)
    nodes = nodes if isinstance(nodes, list) else []
    module.exit_json(
        changed=False,
        nodes=nodes,
        requests=client.requests,
        **summarize(nodes, module.params["expected_nodes"]),
    )


if __name__ == "__main__":
    main()
