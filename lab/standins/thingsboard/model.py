"""Small shared helpers for ThingsBoard's JSON shapes (ids, pages, key-value entries)."""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

JsonDict = dict[str, Any]

# TB's "null" ids (e.g. the customer of an unassigned device) are this UUID.
NULL_UUID = uuid.UUID("13814000-1dd2-11b2-8080-808080808080")


def now_ms() -> int:
    return int(time.time() * 1000)


def new_uuid() -> uuid.UUID:
    # TB uses time-based UUIDs; ordering by creation time is all that matters here.
    return uuid.uuid1()


def entity_id(entity_type: str, value: uuid.UUID | str) -> JsonDict:
    return {"entityType": entity_type, "id": str(value)}


def id_of(ref: Any) -> uuid.UUID | None:
    """The UUID inside ``{"entityType", "id"}`` (or a bare string), None if absent."""
    raw = ref.get("id") if isinstance(ref, dict) else ref
    if raw in (None, ""):
        return None
    return uuid.UUID(str(raw))


def page(
    items: Sequence[JsonDict],
    page_size: int,
    page_no: int,
    *,
    text_search: str | None = None,
    text_of: Callable[[JsonDict], str] | None = None,
    sort_property: str | None = None,
    sort_order: str | None = None,
) -> JsonDict:
    """TB's PageData: filter by a case-insensitive prefix-or-substring search, sort, slice."""
    selected = list(items)
    if text_search:
        needle = text_search.lower()
        key = text_of or (lambda item: str(item.get("name", "")))
        selected = [item for item in selected if needle in key(item).lower()]
    if sort_property:
        selected.sort(
            key=lambda item: _sort_key(item.get(sort_property)), reverse=sort_order == "DESC"
        )
    page_size = max(page_size, 1)
    total = len(selected)
    start = page_no * page_size
    data = selected[start : start + page_size]
    return {
        "data": data,
        "totalPages": (total + page_size - 1) // page_size,
        "totalElements": total,
        "hasNext": start + page_size < total,
    }


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if isinstance(value, bool | int | float):
        return (1, value)
    return (2, str(value))


@dataclass(frozen=True)
class KvEntry:
    """One typed value, as TB keeps it in the *_v columns."""

    key: str
    value: bool | int | float | str | JsonDict | list[Any]

    @property
    def columns(self) -> tuple[bool | None, str | None, int | None, float | None, str | None]:
        v = self.value
        if isinstance(v, bool):
            return (v, None, None, None, None)
        if isinstance(v, int):
            return (None, None, v, None, None)
        if isinstance(v, float):
            return (None, None, None, v, None)
        if isinstance(v, str):
            return (None, v, None, None, None)
        return (None, None, None, None, json.dumps(v))

    def as_text(self) -> str:
        """TB's non-strict REST form: every value as a string."""
        v = self.value
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, dict | list):
            return json.dumps(v, separators=(",", ":"))
        return str(v)


def from_columns(key: str, columns: Sequence[Any]) -> KvEntry:
    """The value of a row's (bool_v, str_v, long_v, dbl_v, json_v) columns."""
    bool_v, str_v, long_v, dbl_v, json_v = columns
    if bool_v is not None:
        return KvEntry(key, bool_v)
    if long_v is not None:
        return KvEntry(key, int(long_v))
    if dbl_v is not None:
        return KvEntry(key, float(dbl_v))
    if json_v is not None:
        return KvEntry(key, json_v if not isinstance(json_v, str) else json.loads(json_v))
    return KvEntry(key, str_v or "")


def parse_kv(values: JsonDict, *, type_cast: bool = True) -> list[KvEntry]:
    """TB's JsonConverter: numbers keep long/double, strings may be cast to numbers."""
    entries = []
    for key, raw in values.items():
        if raw is None:
            continue
        value: Any = raw
        if type_cast and isinstance(raw, str):
            value = _cast(raw)
        entries.append(KvEntry(str(key), value))
    return entries


def _cast(text: str) -> int | float | str:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    # "nan"/"inf" parse as floats in Python but not in TB's NumberUtils.
    return number if math.isfinite(number) else text
