"""Helpers shared by the fleet provisioning modules (tb_device_profiles, tb_assets,
tb_fleet_devices, tb_dashboards): connection options with a retry count, large pages, a
lookup of a rule chain by name, and a tolerant comparison of what ThingsBoard returns with
what a module asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.tb_api import TbClient, common_argument_spec


def fleet_argument_spec() -> dict[str, Any]:
    """tb_api's connection options, plus how often a 429/5xx/connection error is retried and
    an optional JWT from an earlier login (a role logs in once for all its modules)."""
    spec: dict[str, Any] = common_argument_spec()
    spec["retries"] = {"type": "int", "default": 4}
    spec["token"] = {"type": "str", "no_log": True}
    return spec


def fleet_client(params: Mapping[str, Any]) -> TbClient:
    """The client; with ``token`` it sends no login of its own, and logs in with the username
    and password only if ThingsBoard refuses the token (401: expired, or invalidated)."""
    client = TbClient(
        params["url"],
        params["username"],
        params["password"],
        validate_certs=params["validate_certs"],
        timeout=params["timeout"],
        retries=params["retries"],
    )
    if params.get("token"):
        client.token = params["token"]
    return client


def list_all(
    client: TbClient, path: str, page_size: int, query: Mapping[str, Any] | None = None
) -> list[Any]:
    """Every item of a PageData list, ``page_size`` per request (ThingsBoard caps no page
    size; one large page is one request where TbClient.get_all would send ten)."""
    items: list[Any] = []
    page = 0
    while True:
        body = client.get(path, {**(query or {}), "pageSize": page_size, "page": page})
        items.extend(body.get("data", []))
        if not body.get("hasNext", False):
            return items
        page += 1


def find_rule_chain(client: TbClient, name: str) -> dict[str, Any] | None:
    """The tenant's core rule chain with exactly this name (one request)."""
    body = client.get(
        "/api/ruleChains", {"type": "CORE", "textSearch": name, "pageSize": 100, "page": 0}
    )
    for chain in body.get("data", []):
        if chain.get("name") == name:
            found: dict[str, Any] = chain
            return found
    return None


def contains(actual: Any, wanted: Any) -> bool:
    """Whether ``actual`` (as ThingsBoard returns it) holds everything in ``wanted``.

    Mappings: every key of ``wanted`` must match, keys ThingsBoard adds are ignored, and a
    wanted None also matches an absent key. Lists: same length, element by element.
    Numbers compare by value (ThingsBoard may return 5.0 for 5).
    """
    if isinstance(wanted, Mapping):
        if not isinstance(actual, Mapping):
            return False
        return all(
            (value is None and actual.get(key) is None) or contains(actual.get(key), value)
            for key, value in wanted.items()
            if not (value is None and key not in actual)
        )
    if isinstance(wanted, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(wanted)
            and all(contains(a, w) for a, w in zip(actual, wanted, strict=True))
        )
    if isinstance(wanted, bool) or isinstance(actual, bool):
        return actual is wanted
    if isinstance(wanted, int | float) and isinstance(actual, int | float):
        return float(actual) == float(wanted)
    return bool(actual == wanted)


class FleetModule(AnsibleModule):  # type: ignore[misc]
    """AnsibleModule that logs lists as their length: the stock one writes str() of every
    parameter to the target's journal, a megabyte per run for 10,000 devices."""

    def _log_invocation(self) -> None:
        shown = []
        for name, value in self.params.items():
            if self.argument_spec.get(name, {}).get("no_log"):
                shown.append(f"{name}=NOT_LOGGING_PARAMETER")
            elif isinstance(value, list):
                shown.append(f"{name}=<{len(value)} entries>")
            else:
                shown.append(f"{name}={value}")
        self.log("Invoked with " + " ".join(shown))
