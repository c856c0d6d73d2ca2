"""Device activity state, like TB's DefaultDeviceStateService.

A device becomes active with its first message after being inactive (the rule chain then gets an
ACTIVITY_EVENT) and inactive when nothing arrived for its inactivity timeout (INACTIVITY_EVENT).
The state lives in the server attributes TB uses: ``active``, ``lastActivityTime``,
``inactivityAlarmTime`` and the per-device override ``inactivityTimeout`` (milliseconds).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from ..model import KvEntry, id_of, now_ms
from ..store import Store
from .engine import RuleEngine
from .msg import TbMsg
from .nodes import device_metadata


@dataclass
class DeviceStates:
    store: Store
    engine: RuleEngine
    default_timeout_s: int
    last_activity: dict[uuid.UUID, int] = field(default_factory=dict)
    active: set[uuid.UUID] = field(default_factory=set)
    _unsaved: set[uuid.UUID] = field(default_factory=set)

    def load(self) -> None:
        for device in self.store.all("DEVICE"):
            device_id = id_of(device["id"])
            assert device_id is not None
            attrs = self.store.get_attributes(device_id, "SERVER_SCOPE")
            if "active" in attrs and attrs["active"][0].value is True:
                self.active.add(device_id)
            if "lastActivityTime" in attrs:
                self.last_activity[device_id] = _millis(attrs["lastActivityTime"][0].value)

    def timeout_ms(self, device_id: uuid.UUID) -> int:
        override = self.store.get_attributes(device_id, "SERVER_SCOPE").get("inactivityTimeout")
        if override is not None:
            return _millis(override[0].value) or self.default_timeout_s * 1000
        return self.default_timeout_s * 1000

    async def on_activity(self, device_id: uuid.UUID) -> None:
        now = now_ms()
        self.last_activity[device_id] = now
        if device_id in self.active:
            self._unsaved.add(device_id)
            return
        self.active.add(device_id)
        await self.store.save_attributes(
            device_id,
            "SERVER_SCOPE",
            [KvEntry("active", True), KvEntry("lastActivityTime", now)],
        )
        await self._push(device_id, "ACTIVITY_EVENT", active=True)

    async def check(self) -> None:
        """Mark devices inactive; persist last activity times (batched, not per message)."""
        now = now_ms()
        for device_id in list(self.active):
            if now - self.last_activity.get(device_id, 0) <= self.timeout_ms(device_id):
                continue
            self.active.discard(device_id)
            self._unsaved.discard(device_id)
            await self.store.save_attributes(
                device_id,
                "SERVER_SCOPE",
                [KvEntry("active", False), KvEntry("inactivityAlarmTime", now)],
            )
            await self._push(device_id, "INACTIVITY_EVENT", active=False)
        unsaved, self._unsaved = self._unsaved, set()
        for device_id in unsaved:
            last = KvEntry("lastActivityTime", self.last_activity[device_id])
            await self.store.save_attributes(device_id, "SERVER_SCOPE", [last])

    async def _push(self, device_id: uuid.UUID, msg_type: str, *, active: bool) -> None:
        device = self.store.get(device_id, "DEVICE")
        tenant_id = id_of(device.get("tenantId")) if device else None
        if device is None or tenant_id is None:
            return
        attrs = self.store.get_attributes(device_id, "SERVER_SCOPE")

        def attr(key: str) -> int:
            found = attrs.get(key)
            return _millis(found[0].value) if found is not None else 0

        state = {
            "active": active,
            "lastConnectTime": attr("lastConnectTime"),
            "lastActivityTime": self.last_activity.get(device_id, 0),
            "lastDisconnectTime": attr("lastDisconnectTime"),
            "lastInactivityAlarmTime": attr("inactivityAlarmTime"),
            "inactivityTimeout": self.timeout_ms(device_id),
        }
        meta = device_metadata(device, scope="SERVER_SCOPE")
        self.engine.enqueue(TbMsg(msg_type, tenant_id, "DEVICE", device_id, meta, state))


def _millis(value: object) -> int:
    """An attribute holding milliseconds; 0 when it holds something else."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return 0
    try:
        return int(float(value))
    except ValueError:
        return 0
