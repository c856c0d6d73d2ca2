"""TbMsg and TB's ``${metadata}`` / ``$[data]`` pattern substitution."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

# Message types (TbMsgType names) and the relation a TbMsgTypeSwitchNode routes them on.
SWITCH_RELATIONS = {
    "POST_TELEMETRY_REQUEST": "Post telemetry",
    "POST_ATTRIBUTES_REQUEST": "Post attributes",
    "TO_SERVER_RPC_REQUEST": "RPC Request from Device",
    "RPC_CALL_FROM_SERVER_TO_DEVICE": "RPC Request to Device",
    "ACTIVITY_EVENT": "Activity Event",
    "INACTIVITY_EVENT": "Inactivity Event",
    "CONNECT_EVENT": "Connect Event",
    "DISCONNECT_EVENT": "Disconnect Event",
    "ENTITY_CREATED": "Entity Created",
    "ENTITY_UPDATED": "Entity Updated",
    "ENTITY_DELETED": "Entity Deleted",
    "ATTRIBUTES_UPDATED": "Attributes Updated",
    "ATTRIBUTES_DELETED": "Attributes Deleted",
    "TIMESERIES_UPDATED": "Timeseries Updated",
}

_META = re.compile(r"\$\{([^}]+)}")
_DATA = re.compile(r"\$\[([^\]]+)]")


@dataclass(frozen=True)
class TbMsg:
    type: str
    tenant_id: uuid.UUID
    originator_type: str
    originator_id: uuid.UUID
    metadata: dict[str, str] = field(default_factory=dict)
    data: Any = field(default_factory=dict)

    def with_(self, **changes: Any) -> TbMsg:
        return replace(self, **changes)

    @property
    def data_text(self) -> str:
        return self.data if isinstance(self.data, str) else json.dumps(self.data)


def process_pattern(pattern: str, msg: TbMsg) -> str:
    """TbNodeUtils.processPattern: metadata by ``${key}``, message data by ``$[path.to.key]``."""
    text = _META.sub(lambda m: msg.metadata.get(m[1], m[0]), pattern)
    return _DATA.sub(lambda m: _data_value(msg.data, m[1], m[0]), text)


def _data_value(data: Any, path: str, original: str) -> str:
    node = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return original
        node = node[part]
    if isinstance(node, dict | list):
        return json.dumps(node)
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)
