"""Device-profile alarm rules (TB 4.2 ``profileData.alarms``), evaluated like TbDeviceProfileNode.

Follows TB's AlarmState/AlarmRuleState: create rules are tried from the most severe down; a
DURATION rule becomes true once the condition has held for longer than the duration, measured
between message timestamps and, between messages, by a periodic re-check against the clock.
An active alarm is updated by every further message that keeps a create rule true, and cleared
when the clear rule holds.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from ..model import JsonDict, entity_id, id_of, now_ms
from ..store import Store
from .msg import TbMsg

log = logging.getLogger(__name__)

SEVERITIES = ["CRITICAL", "MAJOR", "MINOR", "WARNING", "INDETERMINATE"]
UNITS_MS = {
    "MILLISECONDS": 1,
    "SECONDS": 1000,
    "MINUTES": 60_000,
    "HOURS": 3_600_000,
    "DAYS": 86_400_000,
}
# EntityKeyType of a snapshot entry for each attribute scope (DeviceState.getKeyTypeFromScope).
SCOPE_KEY_TYPES = {
    "CLIENT_SCOPE": "CLIENT_ATTRIBUTE",
    "SHARED_SCOPE": "SHARED_ATTRIBUTE",
    "SERVER_SCOPE": "SERVER_ATTRIBUTE",
}

TRUE, FALSE, NOT_YET_TRUE = "TRUE", "FALSE", "NOT_YET_TRUE"


def alarm_status(alarm: JsonDict) -> str:
    state = "CLEARED" if alarm.get("cleared") else "ACTIVE"
    return f"{state}_{'ACK' if alarm.get('acknowledged') else 'UNACK'}"


class AlarmService:
    """Alarms as entities; at most one uncleared alarm per originator and type, like TB."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def active(self, originator_id: uuid.UUID, alarm_type: str) -> JsonDict | None:
        for alarm in self.store.all("ALARM"):
            if (
                id_of(alarm["originator"]) == originator_id
                and alarm["type"] == alarm_type
                and not alarm.get("cleared")
            ):
                return alarm
        return None

    async def create(
        self,
        msg: TbMsg,
        alarm_type: str,
        severity: str,
        start_ts: int,
        details: Any,
        *,
        propagate: bool = False,
        relation_types: list[str] | None = None,
    ) -> JsonDict:
        originator = self.store.get(msg.originator_id) or {}
        alarm: JsonDict = {
            "tenantId": entity_id("TENANT", msg.tenant_id),
            "customerId": originator.get("customerId"),
            "type": alarm_type,
            "name": alarm_type,
            "originator": entity_id(msg.originator_type, msg.originator_id),
            "severity": severity,
            "acknowledged": False,
            "cleared": False,
            "assigneeId": None,
            "startTs": start_ts,
            "endTs": start_ts,
            "ackTs": 0,
            "clearTs": 0,
            "assignTs": 0,
            "details": details,
            "propagate": propagate,
            "propagateToOwner": False,
            "propagateToTenant": False,
            "propagateRelationTypes": relation_types or [],
            "originatorName": originator.get("name"),
            "originatorLabel": originator.get("label"),
            "assignee": None,
        }
        return await self.save(alarm)

    async def save(self, alarm: JsonDict) -> JsonDict:
        alarm["status"] = alarm_status(alarm)
        return await self.store.save("ALARM", alarm)

    async def clear(self, alarm: JsonDict, details: Any = None) -> JsonDict:
        now = now_ms()
        alarm["cleared"] = True
        alarm["clearTs"] = now
        alarm["endTs"] = max(int(alarm.get("endTs") or 0), now)
        if details is not None:
            alarm["details"] = details
        return await self.save(alarm)


@dataclass
class RuleState:
    """PersistedAlarmRuleState: event count, last event ts and accumulated duration."""

    severity: str | None
    rule: JsonDict
    event_count: int = 0
    last_event_ts: int = 0
    duration: int = 0

    @property
    def spec(self) -> JsonDict:
        return (self.rule.get("condition") or {}).get("spec") or {"type": "SIMPLE"}

    @property
    def filters(self) -> list[JsonDict]:
        return list((self.rule.get("condition") or {}).get("condition") or [])

    def keys(self) -> set[tuple[str, str]]:
        return {(f["key"]["type"], f["key"]["key"]) for f in self.filters}

    def clear(self) -> None:
        self.event_count = self.last_event_ts = self.duration = 0

    def eval(self, snapshot: Snapshot, dyn: DynamicValues) -> str:
        holds = _conditions_hold(self.filters, snapshot, dyn)
        kind = self.spec.get("type", "SIMPLE")
        if kind == "SIMPLE":
            return TRUE if holds else FALSE
        if not holds:
            return FALSE
        if kind == "REPEATING":
            self.event_count += 1
            needed = _resolve_number(self.spec.get("predicate"), dyn)
            return TRUE if self.event_count >= needed else NOT_YET_TRUE
        # DURATION
        if self.last_event_ts > 0:
            if snapshot.ts > self.last_event_ts:
                self.duration += snapshot.ts - self.last_event_ts
                self.last_event_ts = snapshot.ts
        else:
            self.last_event_ts = snapshot.ts
            self.duration = 0
        return TRUE if self.duration > self.required_ms(dyn) else NOT_YET_TRUE

    def eval_at(self, ts: int, dyn: DynamicValues) -> str:
        """Re-check between messages: only a running DURATION rule can become true."""
        if self.spec.get("type") != "DURATION":
            return NOT_YET_TRUE
        required = self.required_ms(dyn)
        if required > 0 and self.last_event_ts > 0 and ts > self.last_event_ts:
            return TRUE if self.duration + (ts - self.last_event_ts) > required else NOT_YET_TRUE
        return FALSE

    def required_ms(self, dyn: DynamicValues) -> int:
        unit = UNITS_MS.get(str(self.spec.get("unit", "SECONDS")), 1000)
        return int(_resolve_number(self.spec.get("predicate"), dyn) * unit)


@dataclass
class Snapshot:
    """DataSnapshot: the latest value of every key the profile's rules use."""

    ts: int = 0
    values: dict[tuple[str, str], Any] = field(default_factory=dict)

    def get(self, key_type: str, key: str) -> Any:
        if key_type == "ATTRIBUTE":
            for scope_type in ("CLIENT_ATTRIBUTE", "SHARED_ATTRIBUTE", "SERVER_ATTRIBUTE"):
                if (scope_type, key) in self.values:
                    return self.values[(scope_type, key)]
            return None
        return self.values.get((key_type, key))


@dataclass
class DynamicValues:
    """Looks up ``dynamicValue`` sources: the device's or the tenant's server attributes."""

    store: Store
    device_id: uuid.UUID
    tenant_id: uuid.UUID

    def lookup(self, dynamic: JsonDict | None) -> Any:
        if not dynamic or not dynamic.get("sourceAttribute"):
            return None
        owner = {"CURRENT_DEVICE": self.device_id, "CURRENT_TENANT": self.tenant_id}.get(
            str(dynamic.get("sourceType"))
        )
        if owner is None:
            return None
        found = self.store.get_attributes(owner, "SERVER_SCOPE").get(dynamic["sourceAttribute"])
        return None if found is None else found[0].value


def _resolve_number(predicate: JsonDict | None, dyn: DynamicValues) -> float:
    predicate = predicate or {}
    dynamic = dyn.lookup(predicate.get("dynamicValue"))
    if dynamic is not None:
        try:
            return float(dynamic)
        except (TypeError, ValueError):
            pass
    user = predicate.get("userValue")
    return float(user if user is not None else predicate.get("defaultValue") or 0)


def _predicate_value(predicate: JsonDict, dyn: DynamicValues) -> Any:
    value = predicate.get("value") or {}
    dynamic = dyn.lookup(value.get("dynamicValue"))
    if dynamic is not None:
        return dynamic
    return (
        value.get("userValue") if value.get("userValue") is not None else value.get("defaultValue")
    )


def _conditions_hold(filters: list[JsonDict], snapshot: Snapshot, dyn: DynamicValues) -> bool:
    if not filters:
        return False
    for flt in filters:
        key = flt["key"]
        value = (
            flt.get("value") if key["type"] == "CONSTANT" else snapshot.get(key["type"], key["key"])
        )
        if value is None or not _eval_predicate(flt.get("predicate") or {}, value, dyn):
            return False
    return True


def _eval_predicate(predicate: JsonDict, value: Any, dyn: DynamicValues) -> bool:
    kind = predicate.get("type")
    operation = predicate.get("operation")
    if kind == "COMPLEX":
        results = (_eval_predicate(p, value, dyn) for p in predicate.get("predicates") or [])
        return any(results) if operation == "OR" else all(results)
    target = _predicate_value(predicate, dyn)
    try:
        if kind == "NUMERIC":
            return _numeric(str(operation), float(value), float(target))
        if kind == "BOOLEAN":
            actual = value if isinstance(value, bool) else str(value).lower() == "true"
            expected = target if isinstance(target, bool) else str(target).lower() == "true"
            return (actual == expected) == (operation == "EQUAL")
        if kind == "STRING":
            return _string(predicate, str(operation), str(value), str(target))
    except (TypeError, ValueError):
        # TB raises a NumericParseException; the condition simply does not hold.
        return False
    return False


def _numeric(operation: str, value: float, target: float) -> bool:
    return {
        "EQUAL": value == target,
        "NOT_EQUAL": value != target,
        "GREATER": value > target,
        "LESS": value < target,
        "GREATER_OR_EQUAL": value >= target,
        "LESS_OR_EQUAL": value <= target,
    }.get(operation, False)


def _string(predicate: JsonDict, operation: str, value: str, target: str) -> bool:
    if predicate.get("ignoreCase"):
        value, target = value.lower(), target.lower()
    items = [item.strip() for item in target.split(",")]
    return {
        "EQUAL": value == target,
        "NOT_EQUAL": value != target,
        "STARTS_WITH": value.startswith(target),
        "ENDS_WITH": value.endswith(target),
        "CONTAINS": target in value,
        "NOT_CONTAINS": target not in value,
        "IN": value in items,
        "NOT_IN": value not in items,
    }.get(operation, False)


@dataclass
class AlarmRuleSet:
    """AlarmState for one profile alarm definition and one device."""

    definition: JsonDict
    create: list[RuleState]
    clear_rule: RuleState | None
    current: JsonDict | None = None

    @classmethod
    def build(cls, definition: JsonDict) -> AlarmRuleSet:
        rules = definition.get("createRules") or {}
        create = [RuleState(sev, rules[sev]) for sev in SEVERITIES if sev in rules]
        clear = definition.get("clearRule")
        return cls(definition, create, RuleState(None, clear) if clear else None)


@dataclass
class Outcome:
    relation: str
    alarm: JsonDict
    rule: RuleState


class ProfileAlarms:
    """The alarm part of TbDeviceProfileNode for every device."""

    def __init__(self, store: Store, alarms: AlarmService) -> None:
        self.store = store
        self.alarms = alarms
        self.snapshots: dict[uuid.UUID, Snapshot] = {}
        self.rule_sets: dict[uuid.UUID, dict[str, AlarmRuleSet]] = {}
        self.last_metadata: dict[uuid.UUID, dict[str, str]] = {}

    def _rule_sets(self, device_id: uuid.UUID, profile: JsonDict) -> dict[str, AlarmRuleSet]:
        definitions = (profile.get("profileData") or {}).get("alarms") or []
        current = self.rule_sets.setdefault(device_id, {})
        wanted = {str(d.get("id") or d.get("alarmType")): d for d in definitions}
        for key in [k for k in current if k not in wanted]:
            del current[key]
        for key, definition in wanted.items():
            existing = current.get(key)
            if existing is None or existing.definition != definition:
                rule_set = AlarmRuleSet.build(definition)
                rule_set.current = self.alarms.active(device_id, definition["alarmType"])
                current[key] = rule_set
        return current

    def _snapshot(self, device_id: uuid.UUID) -> Snapshot:
        snapshot = self.snapshots.get(device_id)
        if snapshot is None:
            snapshot = Snapshot()
            for scope, key_type in SCOPE_KEY_TYPES.items():
                for key, (entry, _ts) in self.store.get_attributes(device_id, scope).items():
                    snapshot.values[(key_type, key)] = entry.value
            self.snapshots[device_id] = snapshot
        return snapshot

    async def on_message(self, msg: TbMsg, profile: JsonDict) -> list[Outcome]:
        """Merge the message into the device's snapshot and evaluate its profile's rules."""
        updates: list[tuple[int, set[tuple[str, str]]]] = []
        snapshot = self._snapshot(msg.originator_id)
        if msg.type == "POST_TELEMETRY_REQUEST":
            ts = int(msg.metadata.get("ts") or now_ms())
            keys = set()
            for key, value in (msg.data or {}).items():
                snapshot.values[("TIME_SERIES", key)] = value
                keys.add(("TIME_SERIES", key))
            updates.append((ts, keys))
        elif msg.type in ("POST_ATTRIBUTES_REQUEST", "ATTRIBUTES_UPDATED"):
            scope = msg.metadata.get("scope") or "CLIENT_SCOPE"
            key_type = SCOPE_KEY_TYPES.get(scope, "CLIENT_ATTRIBUTE")
            keys = set()
            for key, value in (msg.data or {}).items():
                snapshot.values[(key_type, key)] = value
                keys.update({(key_type, key), ("ATTRIBUTE", key)})
            updates.append((now_ms(), keys))
        outcomes: list[Outcome] = []
        if not updates:
            return outcomes
        self.last_metadata[msg.originator_id] = dict(msg.metadata)
        dyn = DynamicValues(self.store, msg.originator_id, msg.tenant_id)
        for ts, keys in updates:
            snapshot.ts = ts
            for rule_set in self._rule_sets(msg.originator_id, profile).values():
                outcomes += await self._evaluate(msg, rule_set, snapshot, dyn, keys)
        return outcomes

    async def on_tick(self, msg: TbMsg, profile: JsonDict, ts: int) -> list[Outcome]:
        """Harvest DURATION rules whose time has come although no new message arrived."""
        snapshot = self.snapshots.get(msg.originator_id)
        if snapshot is None:
            return []
        dyn = DynamicValues(self.store, msg.originator_id, msg.tenant_id)
        outcomes: list[Outcome] = []
        for rule_set in self._rule_sets(msg.originator_id, profile).values():
            outcomes += await self._evaluate(msg, rule_set, snapshot, dyn, None, at=ts)
        return outcomes

    def has_running_duration(self, device_id: uuid.UUID) -> bool:
        return any(
            rule.last_event_ts > 0 and rule.spec.get("type") == "DURATION"
            for rule_set in self.rule_sets.get(device_id, {}).values()
            for rule in rule_set.create
        )

    async def _evaluate(
        self,
        msg: TbMsg,
        rule_set: AlarmRuleSet,
        snapshot: Snapshot,
        dyn: DynamicValues,
        keys: set[tuple[str, str]] | None,
        *,
        at: int | None = None,
    ) -> list[Outcome]:
        def relevant(rule: RuleState) -> bool:
            return keys is None or bool(rule.keys() & keys)

        def evaluate(rule: RuleState) -> str:
            return rule.eval(snapshot, dyn) if at is None else rule.eval_at(at, dyn)

        winner = None
        for rule in rule_set.create:
            if not relevant(rule):
                continue
            result = evaluate(rule)
            if result == TRUE:
                winner = rule
                break
            if result == FALSE:
                rule.clear()
        if winner is not None:
            if rule_set.clear_rule is not None:
                rule_set.clear_rule.clear()
            outcome = await self._raise(msg, rule_set, winner, snapshot)
            return [outcome] if outcome else []
        clear = rule_set.clear_rule
        if rule_set.current is not None and rule_set.current.get("cleared"):
            rule_set.current = None
        if rule_set.current is None or clear is None or not relevant(clear):
            return []
        result = evaluate(clear)
        if result == FALSE:
            clear.clear()
        if result != TRUE:
            return []
        for rule in [*rule_set.create, clear]:
            rule.clear()
        cleared = await self.alarms.clear(rule_set.current, _details(clear, snapshot, None))
        rule_set.current = None
        return [Outcome("Alarm Cleared", cleared, clear)]

    async def _raise(
        self, msg: TbMsg, rule_set: AlarmRuleSet, rule: RuleState, snapshot: Snapshot
    ) -> Outcome | None:
        severity = str(rule.severity)
        current = rule_set.current
        if current is not None and current.get("cleared"):
            current = None  # cleared meanwhile (REST or another node): raise a new alarm
        if current is not None:
            current["endTs"] = now_ms()
            old = str(current["severity"])
            if SEVERITIES.index(severity) > SEVERITIES.index(old):
                return None  # TB skips an update that would lower the severity
            current["details"] = _details(rule, snapshot, current.get("details"))
            relation = "Alarm Updated"
            if severity != old:
                current["severity"] = severity
                relation = "Alarm Severity Updated"
            rule_set.current = await self.alarms.save(current)
            return Outcome(relation, rule_set.current, rule)
        definition = rule_set.definition
        rule_set.current = await self.alarms.create(
            msg,
            definition["alarmType"],
            severity,
            snapshot.ts or now_ms(),
            _details(rule, snapshot, None),
            propagate=bool(definition.get("propagate")),
            relation_types=definition.get("propagateRelationTypes"),
        )
        return Outcome("Alarm Created", rule_set.current, rule)


def _details(rule: RuleState, snapshot: Snapshot, previous: Any) -> Any:
    template = rule.rule.get("alarmDetails")
    if template:
        text = str(template)
        for flt in rule.filters:
            value = snapshot.get(flt["key"]["type"], flt["key"]["key"])
            text = text.replace("${" + flt["key"]["key"] + "}", str(value))
        return {"data": text}
    return previous if previous is not None else {}


def alarm_message(msg: TbMsg, outcome: Outcome, metadata: dict[str, str]) -> TbMsg:
    """The "ALARM" message TbDeviceProfileNode emits for a created/updated/cleared alarm."""
    meta = dict(metadata)
    flag = {
        "Alarm Created": "isNewAlarm",
        "Alarm Updated": "isExistingAlarm",
        "Alarm Severity Updated": "isSeverityUpdated",
        "Alarm Cleared": "isClearedAlarm",
    }[outcome.relation]
    meta[flag] = "true"
    if outcome.relation == "Alarm Severity Updated":
        meta["isExistingAlarm"] = "true"
    spec_type = outcome.rule.spec.get("type")
    if spec_type == "DURATION":
        meta["alarmConditionDuration"] = str(outcome.rule.duration)
    elif spec_type == "REPEATING":
        meta["alarmConditionRepeats"] = str(outcome.rule.event_count)
    return msg.with_(type="ALARM", metadata=meta, data=dict(outcome.alarm))
