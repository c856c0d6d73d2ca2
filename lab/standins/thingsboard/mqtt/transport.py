"""TB's MQTT device and gateway API (v1/devices/me/*, v1/gateway/*) on top of the server."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from ..engine.activity import DeviceStates
from ..engine.engine import RuleEngine
from ..engine.msg import TbMsg
from ..engine.nodes import device_metadata
from ..model import JsonDict, id_of, now_ms
from ..service import Service, basic_credentials_id
from ..store import Relation
from . import codec
from .server import Session

log = logging.getLogger(__name__)

ME = "v1/devices/me/"
GW = "v1/gateway/"
# What TB answers a "getSessionLimits" RPC with when the tenant profile sets no rate limits.
MAX_PAYLOAD_SIZE = 65536
NO_LIMITS = {"messages": "", "telemetryMessages": "", "telemetryDataPoints": ""}

REFUSED_BAD_CREDENTIALS = 0x86
REFUSED_NOT_AUTHORIZED = 0x87


class DeviceTransport:
    def __init__(self, service: Service, engine: RuleEngine, states: DeviceStates) -> None:
        self.service = service
        self.store = service.store
        self.engine = engine
        self.states = states

    # ---- connect -------------------------------------------------------------------------

    def authenticate(self, connect: codec.Connect) -> tuple[int, JsonDict | None]:
        creds = None
        if connect.username and not connect.password:
            creds = self.store.find("DEVICE_CREDENTIALS", None, connect.username)
            if creds is not None and creds.get("credentialsType") != "ACCESS_TOKEN":
                creds = None
        if creds is None:
            creds = self._basic(connect)
        device = self.store.get(id_of(creds["deviceId"]), "DEVICE") if creds else None
        if device is None:
            log.info("MQTT CONNECT refused for client %r", connect.client_id)
            return REFUSED_BAD_CREDENTIALS, None
        return 0, device

    def _basic(self, connect: codec.Connect) -> JsonDict | None:
        # MQTT_BASIC: TB matches clientId and/or userName, then checks the password.
        for client_id, user in (
            (connect.client_id, connect.username),
            (None, connect.username),
            (connect.client_id, None),
        ):
            creds = self.store.find(
                "DEVICE_CREDENTIALS", None, basic_credentials_id(client_id, user)
            )
            if creds is None or creds.get("credentialsType") != "MQTT_BASIC":
                continue
            value = json.loads(creds.get("credentialsValue") or "{}")
            password = (connect.password or b"").decode()
            if not value.get("password") or value["password"] == password:
                return creds
        return None

    async def on_disconnect(self, session: Session) -> None:
        log.debug("MQTT session of %s closed", session.device.get("name"))

    # ---- publish -------------------------------------------------------------------------

    async def on_publish(self, session: Session, message: codec.Publish) -> bool:
        device = self._fresh(session.device)
        if device is None:
            return False
        try:
            payload: Any = json.loads(message.payload) if message.payload else {}
        except ValueError:
            log.info("Non-JSON payload on %s from %s", message.topic, device["name"])
            return True
        topic = message.topic
        if topic.startswith(GW):
            if not (device.get("additionalInfo") or {}).get("gateway"):
                log.info("Device %s is not a gateway: %s refused", device["name"], topic)
                return False
            await self._gateway(session, device, topic.removeprefix(GW), payload)
        elif topic.startswith(ME):
            await self._device(session, device, topic.removeprefix(ME), payload)
        else:
            log.info("Unknown topic %s from %s", topic, device["name"])
        await self.states.on_activity(self._id(device))
        return True

    def _fresh(self, device: JsonDict) -> JsonDict | None:
        # The device may have been deleted or made a gateway since the session started.
        return self.store.get(self._id(device), "DEVICE")

    @staticmethod
    def _id(device: JsonDict) -> uuid.UUID:
        device_id = id_of(device["id"])
        assert device_id is not None
        return device_id

    async def _device(self, session: Session, device: JsonDict, sub: str, payload: Any) -> None:
        if sub == "telemetry":
            await self._telemetry(device, payload)
        elif sub == "attributes":
            await self._attributes(device, payload)
        elif sub.startswith("attributes/request/"):
            answer = self._attribute_answer(device, payload)
            session.publish(ME + "attributes/response/" + sub.rsplit("/", 1)[1], _dump(answer))
        elif sub.startswith("rpc/request/"):
            request_id = sub.rsplit("/", 1)[1]
            if isinstance(payload, dict) and payload.get("method") == "getSessionLimits":
                session.publish(ME + "rpc/response/" + request_id, _dump(self._limits(device)))
            else:
                await self._submit(device, "TO_SERVER_RPC_REQUEST", payload, requestId=request_id)
        # rpc/response/*, claim, provision: acknowledged, nothing else to do for the lab.

    def _limits(self, device: JsonDict) -> JsonDict:
        limits: JsonDict = {
            "maxPayloadSize": MAX_PAYLOAD_SIZE,
            "maxInflightMessages": 100,
            "rateLimits": dict(NO_LIMITS),
        }
        if (device.get("additionalInfo") or {}).get("gateway"):
            limits["gatewayRateLimits"] = dict(NO_LIMITS)
        return limits

    def _attribute_answer(self, device: JsonDict, request: Any) -> JsonDict:
        request = request if isinstance(request, dict) else {}
        answer: JsonDict = {}
        for section, scope, option in (
            ("client", "CLIENT_SCOPE", "clientKeys"),
            ("shared", "SHARED_SCOPE", "sharedKeys"),
        ):
            values = self.store.get_attributes(self._id(device), scope)
            wanted = request.get(option)
            keys = [k.strip() for k in str(wanted).split(",")] if wanted else list(values)
            found = {k: values[k][0].value for k in keys if k in values}
            if found:
                answer[section] = found
        return answer

    async def _gateway(self, session: Session, gateway: JsonDict, sub: str, payload: Any) -> None:
        if not isinstance(payload, dict):
            return
        if sub == "connect":
            await self._child(gateway, str(payload.get("device")), payload.get("type"))
        elif sub == "telemetry":
            for name, data in payload.items():
                await self._telemetry(await self._child(gateway, name, None), data)
        elif sub == "attributes":
            for name, data in payload.items():
                await self._attributes(await self._child(gateway, name, None), data)
        elif sub == "attributes/request":
            child = await self._child(gateway, str(payload.get("device")), None)
            scope = "CLIENT_SCOPE" if payload.get("client") else "SHARED_SCOPE"
            values = self.store.get_attributes(self._id(child), scope)
            answer: JsonDict = {"id": payload.get("id"), "device": child["name"]}
            if "keys" in payload:
                answer["values"] = {k: values[k][0].value for k in payload["keys"] if k in values}
            else:
                found = values.get(str(payload.get("key")))
                answer["value"] = found[0].value if found else None
            session.publish(GW + "attributes/response", _dump(answer))
        # disconnect, rpc (responses), claim: acknowledged; TB only updates session state.

    async def _child(self, gateway: JsonDict, name: str, profile: str | None) -> JsonDict:
        """The device behind a gateway, created on first sight as TB's gateway handler does."""
        tenant_id = id_of(gateway["tenantId"])
        assert tenant_id is not None
        found = self.store.find("DEVICE", tenant_id, name)
        if found is not None:
            return found
        gateway_id = self._id(gateway)
        device = await self.service.save_device(
            tenant_id,
            {
                "name": name,
                "type": profile or "default",
                "additionalInfo": {
                    "gateway": False,
                    "overwriteActivityTime": False,
                    "description": "",
                    "lastConnectedGateway": str(gateway_id),
                },
            },
        )
        await self.store.add_relation(
            Relation("DEVICE", gateway_id, "DEVICE", self._id(device), "Created"), None
        )
        await self._submit(device, "ENTITY_CREATED", device)
        return device

    async def _telemetry(self, device: JsonDict, payload: Any) -> None:
        for ts, values in _telemetry_entries(payload):
            await self._submit(device, "POST_TELEMETRY_REQUEST", values, ts=ts)
        await self.states.on_activity(self._id(device))

    async def _attributes(self, device: JsonDict, payload: Any) -> None:
        if isinstance(payload, dict) and payload:
            await self._submit(device, "POST_ATTRIBUTES_REQUEST", payload)
            await self.states.on_activity(self._id(device))

    async def _submit(self, device: JsonDict, msg_type: str, data: Any, **meta: Any) -> None:
        tenant_id = id_of(device["tenantId"])
        assert tenant_id is not None
        msg = TbMsg(
            msg_type, tenant_id, "DEVICE", self._id(device), device_metadata(device, **meta), data
        )
        self.engine.enqueue(msg)


def _telemetry_entries(payload: Any) -> list[tuple[int, JsonDict]]:
    """TB's JsonConverter forms: {k: v}, {"ts", "values"} or a list of either."""
    items = payload if isinstance(payload, list) else [payload]
    entries = []
    for item in items:
        if not isinstance(item, dict) or not item:
            continue
        if "ts" in item and isinstance(item.get("values"), dict):
            entries.append((int(item["ts"]), item["values"]))
        else:
            entries.append((now_ms(), item))
    return entries


def _dump(body: JsonDict) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()
