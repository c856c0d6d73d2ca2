"""Rule chains: import/export, chains and their metadata, root selection."""

from __future__ import annotations

import copy
import uuid

from aiohttp import web

from ..model import JsonDict, entity_id, id_of
from .common import bad_request, body_json, ok, owned, paged, path_uuid, state, tenant_of

routes = web.RouteTableDef()


def _chain_defaults(tenant_id: uuid.UUID, chain: JsonDict) -> JsonDict:
    chain["tenantId"] = entity_id("TENANT", tenant_id)
    chain.setdefault("type", "CORE")
    chain.setdefault("root", False)
    chain.setdefault("debugMode", False)
    chain.setdefault("configuration", None)
    chain.setdefault("additionalInfo", None)
    chain.setdefault("firstRuleNodeId", None)
    return chain


@routes.post("/api/ruleChains/import")
async def import_rule_chains(request: web.Request) -> web.Response:
    """Like TB's importTenantRuleChains: fresh ids, or overwrite the chain of the same name."""
    tenant_id = tenant_of(request)
    body = await body_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("ruleChains"), list):
        raise bad_request("RuleChainData with ruleChains is required")
    overwrite = request.query.get("overwrite", "false").lower() == "true"
    app_state = state(request)
    store = app_state.store
    metadata_by_chain = {str(id_of(md.get("ruleChainId"))): md for md in body.get("metadata") or []}
    results = []
    for given in body["ruleChains"]:
        chain = _chain_defaults(tenant_id, copy.deepcopy(given))
        old_id = str(id_of(chain.get("id")))
        existing = (
            next(
                (
                    c
                    for c in store.all("RULE_CHAIN", tenant_id)
                    if c["name"] == chain.get("name") and c.get("type", "CORE") == chain["type"]
                ),
                None,
            )
            if overwrite
            else None
        )
        chain["id"] = existing["id"] if existing else None
        chain["root"] = bool(existing and existing.get("root"))
        chain.pop("createdTime", None)
        saved = await store.save("RULE_CHAIN", chain)
        metadata = copy.deepcopy(metadata_by_chain.get(old_id) or {"nodes": [], "connections": []})
        for node in metadata.get("nodes") or []:
            node.pop("id", None)  # TB resets rule node ids on import
        await app_state.service.save_rule_chain_metadata(saved, metadata)
        saved_id = id_of(saved["id"])
        assert saved_id is not None
        app_state.engine.invalidate(saved_id)
        results.append(
            {
                "ruleChainId": saved["id"],
                "ruleChainName": saved["name"],
                "updated": existing is not None,
                "error": None,
            }
        )
    return ok(results)


@routes.get("/api/ruleChains/export")
async def export_rule_chains(request: web.Request) -> web.Response:
    store = state(request).store
    limit = int(request.query.get("limit", "100"))
    chains = store.all("RULE_CHAIN", tenant_of(request))[:limit]
    metadata = []
    for chain in chains:
        chain_id = id_of(chain["id"])
        assert chain_id is not None
        if chain_id in store.rule_chain_metadata:
            metadata.append(store.rule_chain_metadata[chain_id])
    return ok({"ruleChains": chains, "metadata": metadata})


@routes.get("/api/ruleChains")
async def rule_chains(request: web.Request) -> web.Response:
    chains = state(request).store.all("RULE_CHAIN", tenant_of(request))
    wanted = request.query.get("type")
    if wanted:
        chains = [c for c in chains if c.get("type", "CORE") == wanted]
    return ok(paged(request, chains))


@routes.get("/api/ruleChain/{ruleChainId}")
async def get_rule_chain(request: web.Request) -> web.Response:
    return ok(owned(request, path_uuid(request, "ruleChainId"), "RULE_CHAIN"))


@routes.get("/api/ruleChain/{ruleChainId}/metadata")
async def get_rule_chain_metadata(request: web.Request) -> web.Response:
    chain_id = path_uuid(request, "ruleChainId")
    owned(request, chain_id, "RULE_CHAIN")
    metadata = state(request).store.rule_chain_metadata.get(chain_id)
    return ok(
        metadata
        or {
            "ruleChainId": entity_id("RULE_CHAIN", chain_id),
            "firstNodeIndex": None,
            "nodes": [],
            "connections": [],
            "ruleChainConnections": [],
        }
    )


@routes.post("/api/ruleChain")
async def save_rule_chain(request: web.Request) -> web.Response:
    body = await body_json(request)
    if not isinstance(body, dict) or not body.get("name"):
        raise bad_request("Rule chain name should be specified!")
    tenant_id = tenant_of(request)
    existing_id = id_of(body.get("id"))
    if existing_id is not None and state(request).store.get(existing_id) is not None:
        old = owned(request, existing_id, "RULE_CHAIN")
        body["root"] = old.get("root", False)
    else:
        body["root"] = False
    return ok(await state(request).store.save("RULE_CHAIN", _chain_defaults(tenant_id, body)))


@routes.post("/api/ruleChain/metadata")
async def save_rule_chain_metadata(request: web.Request) -> web.Response:
    body = await body_json(request)
    if not isinstance(body, dict):
        raise bad_request("RuleChainMetaData is required")
    chain_id = id_of(body.get("ruleChainId"))
    chain = owned(request, chain_id, "RULE_CHAIN")
    app_state = state(request)
    metadata = await app_state.service.save_rule_chain_metadata(chain, body)
    assert chain_id is not None
    app_state.engine.invalidate(chain_id)
    return ok(metadata)


@routes.post("/api/ruleChain/{ruleChainId}/root")
async def set_root(request: web.Request) -> web.Response:
    store = state(request).store
    chosen = owned(request, path_uuid(request, "ruleChainId"), "RULE_CHAIN")
    for chain in store.all("RULE_CHAIN", tenant_of(request)):
        if chain.get("root") != (chain is chosen):
            chain["root"] = chain is chosen
            await store.save("RULE_CHAIN", chain)
    return ok(chosen)


@routes.delete("/api/ruleChain/{ruleChainId}")
async def delete_rule_chain(request: web.Request) -> web.Response:
    chain_id = path_uuid(request, "ruleChainId")
    chain = owned(request, chain_id, "RULE_CHAIN")
    if chain.get("root"):
        raise bad_request("Deletion of Root Tenant Rule Chain is prohibited!")
    app_state = state(request)
    await app_state.store.delete(chain_id)
    app_state.engine.invalidate(chain_id)
    return web.Response(status=200)
