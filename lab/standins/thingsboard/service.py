"""Domain operations shared by the REST API, the MQTT transport and the rule engine."""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass

from . import defaults
from .model import NULL_UUID, JsonDict, entity_id, id_of
from .store import Store


class BadRequestError(ValueError):
    """The request is understood but refused (TB answers 400 with this message)."""


class NotFoundError(LookupError):
    """TB answers 404 "Requested item wasn't found!"."""


def new_access_token() -> str:
    # TB generates 20 random alphanumerics.
    return secrets.token_urlsafe(15)[:20]


def basic_credentials_id(client_id: str | None, user_name: str | None) -> str:
    # TB derives MQTT_BASIC credentialsId from a hash of the identity; any stable hash will do.
    return hashlib.sha3_256(f"{client_id or ''}|{user_name or ''}".encode()).hexdigest()


@dataclass
class Service:
    store: Store

    # ---- tenants -------------------------------------------------------------------------

    async def create_tenant(self, body: JsonDict) -> JsonDict:
        is_new = self.store.get(id_of(body.get("id")), "TENANT") is None
        body.setdefault("tenantProfileId", None)
        body.setdefault("additionalInfo", None)
        body["name"] = body.get("title")
        tenant = await self.store.save("TENANT", body)
        if is_new:
            tenant_id = id_of(tenant["id"])
            assert tenant_id is not None
            await self.store.save(
                "DEVICE_PROFILE", defaults.device_profile(tenant_id, "default", default=True)
            )
            chain = await self.store.save("RULE_CHAIN", defaults.root_rule_chain(tenant_id))
            metadata = defaults.root_rule_chain_metadata()
            await self.save_rule_chain_metadata(chain, metadata)
        return tenant

    # ---- device profiles -----------------------------------------------------------------

    def default_profile(self, tenant_id: uuid.UUID) -> JsonDict:
        for profile in self.store.all("DEVICE_PROFILE", tenant_id):
            if profile.get("default"):
                return profile
        raise NotFoundError("default device profile")

    async def save_device_profile(self, tenant_id: uuid.UUID, body: JsonDict) -> JsonDict:
        old = self.store.get(id_of(body.get("id")), "DEVICE_PROFILE")
        if old is not None and id_of(old.get("tenantId")) != tenant_id:
            raise NotFoundError("device profile")
        body["tenantId"] = entity_id("TENANT", tenant_id)
        template = defaults.device_profile(tenant_id, str(body.get("name") or ""), default=False)
        for key, value in template.items():
            body.setdefault(key, value)
        if not body.get("name"):
            raise BadRequestError("Device profile name should be specified!")
        body["default"] = bool(old.get("default")) if old is not None else False
        return await self.store.save("DEVICE_PROFILE", body)

    async def find_or_create_profile(self, tenant_id: uuid.UUID, name: str | None) -> JsonDict:
        if not name:
            return self.default_profile(tenant_id)
        found = self.store.find("DEVICE_PROFILE", tenant_id, name)
        if found is not None:
            return found
        # Like TB's DeviceProfileCache.findOrCreateDeviceProfile for a device "type".
        return await self.save_device_profile(tenant_id, {"name": name})

    # ---- devices -------------------------------------------------------------------------

    def device_json(self, tenant_id: uuid.UUID, body: JsonDict, profile: JsonDict) -> JsonDict:
        body["tenantId"] = entity_id("TENANT", tenant_id)
        body["deviceProfileId"] = profile["id"]
        body["type"] = profile["name"]
        body.setdefault("customerId", entity_id("CUSTOMER", NULL_UUID))
        body.setdefault("label", None)
        body.setdefault("additionalInfo", None)
        body.setdefault("firmwareId", None)
        body.setdefault("softwareId", None)
        body.setdefault("externalId", None)
        body.setdefault(
            "deviceData",
            {"configuration": {"type": "DEFAULT"}, "transportConfiguration": {"type": "DEFAULT"}},
        )
        return body

    async def resolve_profile(self, tenant_id: uuid.UUID, body: JsonDict) -> JsonDict:
        """A device names its profile by id (deviceProfileId) or, older style, by type."""
        profile_id = id_of(body.get("deviceProfileId"))
        if profile_id is not None:
            profile = self.store.get(profile_id, "DEVICE_PROFILE")
            if profile is None or id_of(profile.get("tenantId")) != tenant_id:
                raise BadRequestError("Device profile is non-existent!")
            return profile
        return await self.find_or_create_profile(tenant_id, body.get("type"))

    async def save_device(
        self,
        tenant_id: uuid.UUID,
        body: JsonDict,
        *,
        access_token: str | None = None,
        credentials: JsonDict | None = None,
    ) -> JsonDict:
        old = self.store.get(id_of(body.get("id")), "DEVICE")
        if old is not None and id_of(old.get("tenantId")) != tenant_id:
            raise NotFoundError("device")
        if not body.get("name"):
            raise BadRequestError("Device name should be specified!")
        profile = await self.resolve_profile(tenant_id, body)
        device = self.store.prepare("DEVICE", self.device_json(tenant_id, body, profile))
        device_id = id_of(device["id"])
        assert device_id is not None
        creds = None
        if old is None or credentials is not None or access_token is not None:
            creds = self.credentials_json(device_id, credentials, access_token)
            self.store.prepare("DEVICE_CREDENTIALS", creds)
        await self.store.save_many("DEVICE", [device])
        if creds is not None:
            await self.store.save_many("DEVICE_CREDENTIALS", [creds])
        return device

    def credentials_json(
        self, device_id: uuid.UUID, given: JsonDict | None, access_token: str | None
    ) -> JsonDict:
        existing = self.store.credentials_of(device_id)
        creds: JsonDict = dict(given or {})
        creds["id"] = existing["id"] if existing else creds.get("id")
        creds["deviceId"] = entity_id("DEVICE", device_id)
        kind = creds.get("credentialsType") or "ACCESS_TOKEN"
        creds["credentialsType"] = kind
        if kind == "ACCESS_TOKEN":
            creds["credentialsId"] = (
                access_token or creds.get("credentialsId") or new_access_token()
            )
            creds["credentialsValue"] = None
        elif kind == "MQTT_BASIC":
            value = creds.get("credentialsValue")
            parsed = json.loads(value) if isinstance(value, str) else dict(value or {})
            creds["credentialsId"] = basic_credentials_id(
                parsed.get("clientId"), parsed.get("userName")
            )
            creds["credentialsValue"] = json.dumps(parsed)
        else:
            raise BadRequestError(f"Credentials type {kind} is not supported by the stand-in")
        return creds

    async def delete_device(self, device_id: uuid.UUID) -> None:
        creds = self.store.credentials_of(device_id)
        if creds is not None:
            creds_id = id_of(creds["id"])
            assert creds_id is not None
            await self.store.delete(creds_id)
        await self.store.delete(device_id)

    # ---- rule chains ---------------------------------------------------------------------

    async def save_rule_chain_metadata(self, chain: JsonDict, metadata: JsonDict) -> JsonDict:
        chain_id = id_of(chain["id"])
        assert chain_id is not None
        nodes = metadata.get("nodes") or []
        for node in nodes:
            node["id"] = entity_id("RULE_NODE", id_of(node.get("id")) or uuid.uuid1())
            node["ruleChainId"] = chain["id"]
            node.setdefault("createdTime", chain["createdTime"])
        metadata["ruleChainId"] = chain["id"]
        metadata["nodes"] = nodes
        metadata.setdefault("connections", [])
        metadata.setdefault("ruleChainConnections", [])
        metadata["version"] = chain.get("version")
        first = metadata.get("firstNodeIndex")
        chain["firstRuleNodeId"] = (
            nodes[first]["id"] if isinstance(first, int) and 0 <= first < len(nodes) else None
        )
        await self.store.save("RULE_CHAIN", chain)
        metadata["version"] = chain["version"]
        await self.store.save_rule_chain_metadata(chain_id, metadata)
        return metadata

    # ---- assets --------------------------------------------------------------------------

    async def save_asset(self, tenant_id: uuid.UUID, body: JsonDict) -> JsonDict:
        old = self.store.get(id_of(body.get("id")), "ASSET")
        if old is not None and id_of(old.get("tenantId")) != tenant_id:
            raise NotFoundError("asset")
        if not body.get("name"):
            raise BadRequestError("Asset name should be specified!")
        type_name = str(body.get("type") or "default")
        profile = self.store.find("ASSET_PROFILE", tenant_id, type_name)
        if profile is None:
            # TB keeps one asset profile per asset type, created on first use.
            profile = await self.store.save(
                "ASSET_PROFILE",
                {
                    "tenantId": entity_id("TENANT", tenant_id),
                    "name": type_name,
                    "default": type_name == "default",
                },
            )
        body["tenantId"] = entity_id("TENANT", tenant_id)
        body["type"] = type_name
        body["assetProfileId"] = profile["id"]
        body.setdefault("customerId", entity_id("CUSTOMER", NULL_UUID))
        body.setdefault("label", None)
        body.setdefault("additionalInfo", None)
        body.setdefault("externalId", None)
        return await self.store.save("ASSET", body)
