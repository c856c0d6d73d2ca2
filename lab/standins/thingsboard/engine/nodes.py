"""Rule node types the stand-in interprets, keyed by TB's class names.

Each node returns the relations (and messages) it emits; the chain runner follows them. The
configuration keys are those of TB's *NodeConfiguration classes.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..model import JsonDict, id_of, now_ms, parse_kv
from ..service import Service
from ..store import Relation
from ..telemetry import TelemetryReader, TelemetryWriter
from .alarms import AlarmService, ProfileAlarms, alarm_message
from .external_mqtt import ExternalMqtt
from .msg import SWITCH_RELATIONS, TbMsg, process_pattern

log = logging.getLogger(__name__)

RE = "org.thingsboard.rule.engine."
Emitted = list[tuple[str, TbMsg]]


@dataclass
class Context:
    """What nodes may touch: TB's TbContext, reduced to the stand-in's services."""

    service: Service
    writer: TelemetryWriter
    reader: TelemetryReader
    alarms: AlarmService
    profile_alarms: ProfileAlarms
    mqtt: ExternalMqtt
    # Runs another rule chain (TbRuleChainInputNode); set by the engine.
    run_chain: Callable[[uuid.UUID, TbMsg], Awaitable[None]]

    def profile_of(self, msg: TbMsg) -> JsonDict | None:
        device = self.service.store.get(msg.originator_id, "DEVICE")
        if device is None:
            return None
        return self.service.store.get(id_of(device.get("deviceProfileId")), "DEVICE_PROFILE")


class Node(Protocol):
    async def process(self, msg: TbMsg) -> Emitted: ...


@dataclass
class DeviceProfileNode:
    ctx: Context

    async def process(self, msg: TbMsg) -> Emitted:
        emitted: Emitted = []
        profile = self.ctx.profile_of(msg)
        if profile is not None:
            for outcome in await self.ctx.profile_alarms.on_message(msg, profile):
                emitted.append((outcome.relation, alarm_message(msg, outcome, msg.metadata)))
        emitted.append(("Success", msg))
        return emitted


@dataclass
class MsgTypeSwitchNode:
    async def process(self, msg: TbMsg) -> Emitted:
        if msg.type == "ALARM":
            return [("Other", msg)]
        return [(SWITCH_RELATIONS.get(msg.type, "Other"), msg)]


@dataclass
class TimeseriesNode:
    ctx: Context

    async def process(self, msg: TbMsg) -> Emitted:
        if msg.type != "POST_TELEMETRY_REQUEST":
            return [("Failure", msg)]
        default_ts = int(msg.metadata.get("ts") or now_ms())
        batches = msg.data if isinstance(msg.data, list) else [msg.data]
        for batch in batches:
            values = batch.get("values", batch) if "ts" in batch else batch
            ts = int(batch["ts"]) if "ts" in batch else default_ts
            await self.ctx.writer.add(msg.originator_id, ts, parse_kv(values))
        return [("Success", msg)]


@dataclass
class AttributesNode:
    ctx: Context
    scope: str
    # TB's updateAttributesOnlyOnValueChange: unchanged values are not written again.
    only_on_change: bool = False

    async def process(self, msg: TbMsg) -> Emitted:
        if not isinstance(msg.data, dict):
            return [("Failure", msg)]
        entries = parse_kv(msg.data)
        if self.only_on_change:
            stored = self.ctx.service.store.attributes[(msg.originator_id, self.scope)]
            entries = [e for e in entries if e.key not in stored or stored[e.key][0] != e]
        if entries:
            await self.ctx.service.store.save_attributes(msg.originator_id, self.scope, entries)
        return [("Success", msg)]


@dataclass
class GetAttributesNode:
    """TbGetAttributesNode: originator attributes into metadata as cs_/shared_/ss_<key>."""

    ctx: Context
    config: JsonDict

    async def process(self, msg: TbMsg) -> Emitted:
        store = self.ctx.service.store
        found: dict[str, str] = {}
        missing = False
        for option, scope, prefix in (
            ("clientAttributeNames", "CLIENT_SCOPE", "cs_"),
            ("sharedAttributeNames", "SHARED_SCOPE", "shared_"),
            ("serverAttributeNames", "SERVER_SCOPE", "ss_"),
        ):
            values = store.get_attributes(msg.originator_id, scope)
            for key in self.config.get(option) or []:
                name = process_pattern(key, msg)
                if name in values:
                    found[prefix + name] = values[name][0].as_text()
                else:
                    missing = True
        ts_keys = [process_pattern(k, msg) for k in self.config.get("latestTsKeyNames") or []]
        if ts_keys:
            latest = await self.ctx.reader.latest(msg.originator_id, ts_keys, strict=False)
            missing |= len(latest) < len(ts_keys)
            found.update({key: str(points[0]["value"]) for key, points in latest.items()})
        if missing and self.config.get("tellFailureIfAbsent"):
            return [("Failure", msg)]
        if self.config.get("fetchTo") == "DATA" and isinstance(msg.data, dict):
            return [("Success", msg.with_(data={**msg.data, **found}))]
        return [("Success", msg.with_(metadata={**msg.metadata, **found}))]


@dataclass
class MqttNode:
    """TbMqttNode: publishes the message data to an external broker (QoS 1, like TB)."""

    ctx: Context
    config: JsonDict

    async def process(self, msg: TbMsg) -> Emitted:
        topic = process_pattern(str(self.config.get("topicPattern", "my-topic")), msg)
        try:
            self.ctx.mqtt.publish(
                self.config, topic, msg.data_text, retain=bool(self.config.get("retainedMessage"))
            )
        except Exception as exc:  # the broker is someone else's: report, do not crash
            log.warning("MQTT node publish to %s failed: %s", topic, exc)
            return [("Failure", msg.with_(metadata={**msg.metadata, "error": str(exc)}))]
        return [("Success", msg)]


@dataclass
class CreateRelationNode:
    """TbCreateRelationNode (direction FROM: related entity -> originator)."""

    ctx: Context
    config: JsonDict

    async def process(self, msg: TbMsg) -> Emitted:
        name = process_pattern(str(self.config.get("entityNamePattern") or ""), msg)
        type_pattern = self.config.get("entityTypePattern")
        subtype = process_pattern(str(type_pattern), msg) if type_pattern else None
        target = await self._target(msg, str(self.config.get("entityType")), name, subtype)
        if target is None:
            return [("Failure", msg.with_(metadata={**msg.metadata, "error": f"No {name}"}))]
        target_type, target_id = target
        store = self.ctx.service.store
        rel_type = str(self.config.get("relationType") or "Contains")
        from_target = self.config.get("direction", "FROM") == "FROM"
        if self.config.get("removeCurrentRelations"):
            current = (
                store.relations_to(msg.originator_id, "COMMON")
                if from_target
                else store.relations_from(msg.originator_id, "COMMON")
            )
            for relation in current:
                if relation.type == rel_type:
                    await store.delete_relation(relation)
        if from_target:
            relation = Relation(
                target_type, target_id, msg.originator_type, msg.originator_id, rel_type
            )
        else:
            relation = Relation(
                msg.originator_type, msg.originator_id, target_type, target_id, rel_type
            )
        if relation not in store.relations:
            await store.add_relation(relation, None)
        if self.config.get("changeOriginatorToRelatedEntity"):
            msg = msg.with_(originator_type=target_type, originator_id=target_id)
        return [("Success", msg)]

    async def _target(
        self, msg: TbMsg, entity_type: str, name: str, subtype: str | None
    ) -> tuple[str, uuid.UUID] | None:
        service = self.ctx.service
        if entity_type == "TENANT":
            return ("TENANT", msg.tenant_id)
        if entity_type not in ("ASSET", "DEVICE") or not name:
            return None
        found = service.store.find(entity_type, msg.tenant_id, name)
        if found is None and self.config.get("createEntityIfNotExists"):
            body: JsonDict = {"name": name, "type": subtype or "default"}
            if entity_type == "ASSET":
                found = await service.save_asset(msg.tenant_id, body)
            else:
                found = await service.save_device(msg.tenant_id, body)
        if found is None:
            return None
        found_id = id_of(found["id"])
        assert found_id is not None
        return (entity_type, found_id)


@dataclass
class CreateAlarmNode:
    """TbCreateAlarmNode with a fixed type and severity (details scripts are not run)."""

    ctx: Context
    config: JsonDict

    async def process(self, msg: TbMsg) -> Emitted:
        alarm_type = process_pattern(str(self.config.get("alarmType") or "General Alarm"), msg)
        severity = process_pattern(str(self.config.get("severity") or "CRITICAL"), msg)
        current = self.ctx.alarms.active(msg.originator_id, alarm_type)
        meta = dict(msg.metadata)
        if current is None:
            alarm = await self.ctx.alarms.create(
                msg,
                alarm_type,
                severity,
                now_ms(),
                {},
                propagate=bool(self.config.get("propagate")),
                relation_types=self.config.get("relationTypes"),
            )
            meta["isNewAlarm"] = "true"
            return [("Created", msg.with_(type="ALARM", metadata=meta, data=alarm))]
        current["endTs"] = now_ms()
        current["severity"] = severity
        alarm = await self.ctx.alarms.save(current)
        meta["isExistingAlarm"] = "true"
        return [("Updated", msg.with_(type="ALARM", metadata=meta, data=alarm))]


@dataclass
class ClearAlarmNode:
    ctx: Context
    config: JsonDict

    async def process(self, msg: TbMsg) -> Emitted:
        alarm_type = process_pattern(str(self.config.get("alarmType") or "General Alarm"), msg)
        current = self.ctx.alarms.active(msg.originator_id, alarm_type)
        if current is None:
            return [("False", msg)]
        alarm = await self.ctx.alarms.clear(current)
        meta = {**msg.metadata, "isClearedAlarm": "true"}
        return [("Cleared", msg.with_(type="ALARM", metadata=meta, data=alarm))]


@dataclass
class RuleChainInputNode:
    ctx: Context
    config: JsonDict

    async def process(self, msg: TbMsg) -> Emitted:
        chain_id = id_of(self.config.get("ruleChainId"))
        if chain_id is not None:
            await self.ctx.run_chain(chain_id, msg)
        return []


@dataclass
class LogNode:
    async def process(self, msg: TbMsg) -> Emitted:
        log.info("Log node: type=%s metadata=%s data=%s", msg.type, msg.metadata, msg.data_text)
        return [("Success", msg)]


@dataclass
class PassThroughNode:
    """Any other node type: logged once by the engine, then passed on as Success."""

    async def process(self, msg: TbMsg) -> Emitted:
        return [("Success", msg)]


def build(node_type: str, config: JsonDict, ctx: Context) -> Node | None:
    """The node for a TB class name, or None when the stand-in does not know it."""
    builders: dict[str, Callable[[], Node]] = {
        RE + "profile.TbDeviceProfileNode": lambda: DeviceProfileNode(ctx),
        RE + "filter.TbMsgTypeSwitchNode": MsgTypeSwitchNode,
        RE + "telemetry.TbMsgTimeseriesNode": lambda: TimeseriesNode(ctx),
        RE + "telemetry.TbMsgAttributesNode": lambda: AttributesNode(
            ctx,
            str(config.get("scope") or "SERVER_SCOPE"),
            str(config.get("updateAttributesOnlyOnValueChange", False)).lower() == "true",
        ),
        RE + "metadata.TbGetAttributesNode": lambda: GetAttributesNode(ctx, config),
        RE + "mqtt.TbMqttNode": lambda: MqttNode(ctx, config),
        RE + "action.TbCreateRelationNode": lambda: CreateRelationNode(ctx, config),
        RE + "action.TbCreateAlarmNode": lambda: CreateAlarmNode(ctx, config),
        RE + "action.TbClearAlarmNode": lambda: ClearAlarmNode(ctx, config),
        RE + "flow.TbRuleChainInputNode": lambda: RuleChainInputNode(ctx, config),
        RE + "action.TbLogNode": LogNode,
    }
    builder = builders.get(node_type)
    return builder() if builder is not None else None


def device_metadata(device: JsonDict, **extra: Any) -> dict[str, str]:
    meta = {"deviceName": str(device["name"]), "deviceType": str(device.get("type") or "default")}
    if device.get("label"):
        meta["deviceLabel"] = str(device["label"])
    meta.update({key: str(value) for key, value in extra.items()})
    return meta
