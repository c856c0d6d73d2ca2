"""Filters of the fleet role: check the fleet definition, resolve classes, plan devices.

The fleet is defined in the inventory: ``fleet_classes`` (group_vars/all/fleet.yml) and, on
each host of the simulators group, ``fleet_devices`` ({class: count}). From it:

- ``fleet_problems`` lists everything wrong, each message naming the host and the key, so the
  validation play stops a bad fleet before any host or API is touched;
- ``fleet_resolve_classes`` fills in the defaults and the model card's facts;
- ``fleet_host_plan`` makes one host's devices file (schema devices-file.v1 of the simulator)
  without passwords: deterministic names ``<host>-<class>-<NNNNN>``, a seed per device and
  the class's fault and drift mix assigned by device number, so that growing or shrinking a
  count never renames or reshuffles the devices that stay.

Pure functions, no I/O: the model cards come from the ``fleet_model_cards`` lookup and the
passwords from the ``fleet_devices_file`` action (roles/fleet).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeGuard

from ansible.errors import AnsibleFilterError

# docs/architecture.md and the simulator's devices-file.v1 schema.
DEVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
CLASS_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
MODEL_VERSION = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+$")
NUMBER_DIGITS = 5
MAX_PER_CLASS = 10**NUMBER_DIGITS - 1
SEVERITIES = ("CRITICAL", "MAJOR", "MINOR", "WARNING", "INDETERMINATE")
# Telemetry keys an alarm may watch: the numeric keys of the simulator's inference payload.
ALARM_KEYS = ("anomaly_score", "confidence", "inference_us")

# What a class entry may hold, and the keys that go into the simulator's devices file.
SIM_CLASS_KEYS = (
    "model",
    "model_version",
    "hardware",
    "sample_rate_hz",
    "window",
    "publish_min_interval_s",
    "publish_max_interval_s",
    "health_interval_s",
    "alert_rate_factor",
    "buffer_size",
)
FLOAT_KEYS = (
    "sample_rate_hz",
    "publish_min_interval_s",
    "publish_max_interval_s",
    "health_interval_s",
    "alert_rate_factor",
)
CLASS_KEYS = (
    "name",
    *SIM_CLASS_KEYS,
    "faults",
    "drift",
    "alarms",
    "offline_after_s",
    "ram_budget_bytes",
    "flash_budget_bytes",
)

# Low-discrepancy steps: device n of a class gets the fault bucket of frac(n * PHI + offset),
# so every prefix 1..N of a class holds its mix's shares to within about one device.
PHI = (math.sqrt(5.0) - 1.0) / 2.0
SQRT2 = math.sqrt(2.0) - 1.0


def fleet_device_name(host: str, device_class: str, number: int) -> str:
    """``<host>-<class>-<NNNNN>`` (docs/architecture.md)."""
    return f"{host}-{device_class}-{number:0{NUMBER_DIGITS}d}"


def _unit(*parts: str) -> float:
    """A number in [0, 1) fixed by ``parts``."""
    digest = hashlib.sha256("\0".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def device_seed(name: str) -> int:
    """The simulator's per-device seed: fixed by the name, 0 .. 2**31-1."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") & 0x7FFFFFFF


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _range(value: Any) -> tuple[float, float] | None:
    """``start_s``: a number or ``[min, max]`` (seconds >= 0); None when malformed."""
    if _is_number(value) and value >= 0:
        return float(value), float(value)
    if (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == 2
        and all(_is_number(v) and v >= 0 for v in value)
        and value[0] <= value[1]
    ):
        return float(value[0]), float(value[1])
    return None


def _card_key(model: Any, version: Any) -> str:
    return f"{model}-{version}"


# ---- checks -------------------------------------------------------------------------------


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, host: str, key: str, message: str) -> None:
        self.items.append(f"host {host}: {key}: {message}")


def _check_mix(
    problems: _Problems,
    host: str,
    key: str,
    entry: Mapping[str, Any],
    allowed_faults: Sequence[str] | None,
) -> None:
    faults = entry.get("faults") or []
    if not isinstance(faults, list):
        problems.add(host, f"{key}.faults", "must be a list of {type, share, start_s, ...}")
        faults = []
    total = 0.0
    for index, fault in enumerate(faults):
        where = f"{key}.faults[{index}]"
        if not isinstance(fault, Mapping):
            problems.add(host, where, "must be a mapping")
            continue
        kind = fault.get("type")
        if allowed_faults is not None and kind not in allowed_faults:
            problems.add(
                host,
                f"{where}.type",
                f"{kind!r} is not a fault the model's physics knows ({', '.join(allowed_faults)})",
            )
        share = fault.get("share")
        if not _is_number(share) or not 0 <= share <= 1:
            problems.add(host, f"{where}.share", f"must be a number from 0 to 1, got {share!r}")
        else:
            total += float(share)
        if _range(fault.get("start_s", 0)) is None:
            problems.add(host, f"{where}.start_s", "must be seconds >= 0 or [min, max]")
        ramp = fault.get("ramp_s", 0)
        if not _is_number(ramp) or ramp < 0:
            problems.add(host, f"{where}.ramp_s", f"must be seconds >= 0, got {ramp!r}")
        severity = fault.get("severity", 1.0)
        if not _is_number(severity) or not 0 <= severity <= 1:
            problems.add(host, f"{where}.severity", f"must be from 0 to 1, got {severity!r}")
    if total > 1 + 1e-9:
        problems.add(host, f"{key}.faults", f"the shares add up to {total:g}, more than 1")
    drift = entry.get("drift") or {}
    if not isinstance(drift, Mapping):
        problems.add(host, f"{key}.drift", "must be a mapping {share, start_s, offset_per_h, ...}")
        return
    share = drift.get("share", 0)
    if not _is_number(share) or not 0 <= share <= 1:
        problems.add(host, f"{key}.drift.share", f"must be a number from 0 to 1, got {share!r}")
    if _range(drift.get("start_s", 0)) is None:
        problems.add(host, f"{key}.drift.start_s", "must be seconds >= 0 or [min, max]")
    for field in ("offset_per_h", "gain_per_h", "noise_per_h"):
        value = drift.get(field, 0)
        if not _is_number(value) or (field == "noise_per_h" and value < 0):
            problems.add(host, f"{key}.drift.{field}", f"must be a number, got {value!r}")


def _check_alarms(problems: _Problems, host: str, key: str, alarms: Any) -> None:
    if not isinstance(alarms, list):
        problems.add(host, f"{key}.alarms", "must be a list of alarm rules")
        return
    seen: set[str] = set()
    for index, alarm in enumerate(alarms):
        where = f"{key}.alarms[{index}]"
        if not isinstance(alarm, Mapping):
            problems.add(host, where, "must be a mapping {type, severity, key, above, ...}")
            continue
        kind = alarm.get("type")
        if not isinstance(kind, str) or not kind.strip():
            problems.add(host, f"{where}.type", "must be a non-empty alarm type")
        elif kind in seen:
            problems.add(host, f"{where}.type", f"alarm type {kind!r} is defined twice")
        else:
            seen.add(kind)
        if alarm.get("severity", "MAJOR") not in SEVERITIES:
            problems.add(host, f"{where}.severity", f"must be one of {', '.join(SEVERITIES)}")
        if alarm.get("key", "anomaly_score") not in ALARM_KEYS:
            problems.add(host, f"{where}.key", f"must be one of {', '.join(ALARM_KEYS)}")
        above, below = alarm.get("above"), alarm.get("clear_below")
        if not _is_number(above):
            problems.add(host, f"{where}.above", f"must be a number, got {above!r}")
        if not _is_number(below):
            problems.add(host, f"{where}.clear_below", f"must be a number, got {below!r}")
        elif _is_number(above) and below > above:
            problems.add(
                host, f"{where}.clear_below", f"{below} is above the raise threshold {above}"
            )
        duration = alarm.get("for_s", 0)
        if not _is_count(duration):
            problems.add(host, f"{where}.for_s", f"must be whole seconds >= 0, got {duration!r}")


def _check_class(
    problems: _Problems,
    host: str,
    index: int,
    entry: Any,
    *,
    cards: Mapping[str, Mapping[str, Any]],
    defaults: Mapping[str, Any],
    fault_types: Mapping[str, Sequence[str]],
) -> None:
    if not isinstance(entry, Mapping):
        problems.add(host, f"fleet_classes[{index}]", "must be a mapping")
        return
    name = entry.get("name")
    key = f"fleet_classes[{name if isinstance(name, str) else index}]"
    if not isinstance(name, str) or not CLASS_NAME.match(name):
        problems.add(host, f"{key}.name", f"must match {CLASS_NAME.pattern}, got {name!r}")
    unknown = sorted(set(entry) - set(CLASS_KEYS))
    if unknown:
        problems.add(host, key, f"unknown keys {', '.join(map(str, unknown))}")
    merged = {**defaults, **entry}
    model, version = merged.get("model"), merged.get("model_version")
    card: Mapping[str, Any] | None = None
    if not isinstance(model, str) or not MODEL_NAME.match(model):
        problems.add(host, f"{key}.model", f"must match {MODEL_NAME.pattern}, got {model!r}")
    elif not isinstance(version, str) or not MODEL_VERSION.match(version):
        problems.add(
            host, f"{key}.model_version", f"must be a version such as 1.0.0, got {version!r}"
        )
    else:
        card = cards.get(_card_key(model, version))
        if card is None:
            available = ", ".join(sorted(cards)) or "none"
            problems.add(
                host,
                f"{key}.model",
                f"unknown model {model} {version}: no model card {_card_key(model, version)}.json"
                f" (available: {available})",
            )
    if card is not None:
        _check_budget(problems, host, key, merged, card)
        allowed = fault_types.get(str(card.get("device_class")))
        _check_mix(problems, host, key, merged, allowed)
    else:
        _check_mix(problems, host, key, merged, None)
    for field in FLOAT_KEYS:
        value = merged.get(field)
        if not _is_number(value) or value < 0:
            problems.add(host, f"{key}.{field}", f"must be a number >= 0, got {value!r}")
    rate = merged.get("sample_rate_hz")
    if _is_number(rate) and not 0 < rate <= 100:
        problems.add(host, f"{key}.sample_rate_hz", f"must be above 0 and at most 100, got {rate}")
    low, high = merged.get("publish_min_interval_s"), merged.get("publish_max_interval_s")
    if _is_number(low) and _is_number(high) and (high <= 0 or high < low):
        problems.add(
            host,
            f"{key}.publish_max_interval_s",
            f"must be above 0 and at least publish_min_interval_s ({low}), got {high}",
        )
    factor = merged.get("alert_rate_factor")
    if _is_number(factor) and factor < 1:
        problems.add(host, f"{key}.alert_rate_factor", f"must be at least 1, got {factor}")
    buffer_size = merged.get("buffer_size")
    if not _is_count(buffer_size) or not 1 <= buffer_size <= 100000:
        problems.add(host, f"{key}.buffer_size", f"must be 1 to 100000, got {buffer_size!r}")
    offline = merged.get("offline_after_s")
    if not _is_count(offline) or offline < 1:
        problems.add(host, f"{key}.offline_after_s", f"must be whole seconds >= 1, got {offline!r}")
    _check_alarms(problems, host, key, merged.get("alarms", []))


def _check_budget(
    problems: _Problems,
    host: str,
    key: str,
    merged: Mapping[str, Any],
    card: Mapping[str, Any],
) -> None:
    targets = {str(t.get("device")): t for t in card.get("targets") or []}
    hardware = merged.get("hardware")
    label = f"{card.get('name')} {card.get('version')}"
    if hardware not in targets:
        problems.add(
            host,
            f"{key}.hardware",
            f"{hardware!r} is not a target of model {label} ({', '.join(targets) or 'none'})",
        )
        return
    target = targets[str(hardware)]
    for need, have, override, what in (
        ("arena_bytes", "ram_bytes", "ram_budget_bytes", "tensor arena"),
        ("flash_bytes", "flash_bytes", "flash_budget_bytes", "flash"),
    ):
        required, budget = card.get(need), target.get(have)
        source = f"{hardware} {have} in the card"
        if merged.get(override) is not None:
            if not _is_count(merged[override]):
                problems.add(host, f"{key}.{override}", "must be a whole number of bytes")
                continue
            if _is_number(budget) and merged[override] > budget:
                problems.add(
                    host,
                    f"{key}.{override}",
                    f"{merged[override]} is more than the {budget} bytes of {source}",
                )
                continue
            budget, source = merged[override], f"{override} of the class"
        if _is_number(required) and _is_number(budget) and required > budget:
            problems.add(
                host,
                f"{key}.model",
                f"model {label} needs {required} bytes of {what} ({need}) but the class's"
                f" {hardware} budget is {budget} bytes ({source});"
                " pick a smaller model or other hardware",
            )
    window = merged.get("window")
    expected = _card_window(card)
    if window is not None and window != expected:
        problems.add(
            host, f"{key}.window", f"is {window!r} but model {label} takes {expected} samples"
        )


def _card_window(card: Mapping[str, Any]) -> int:
    shape = (card.get("input") or {}).get("shape") or [1, 0]
    return int(shape[1])


def _hostvar(hostvars: Mapping[str, Any], host: str, name: str, default: Any) -> Any:
    try:
        value = hostvars[host][name]
    except KeyError:
        return default
    return default if value is None else value


def fleet_problems(
    hosts: Iterable[str],
    hostvars: Mapping[str, Any],
    cards: Mapping[str, Mapping[str, Any]],
    defaults: Mapping[str, Any] | None = None,
    fault_types: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """Everything wrong with the fleet of ``hosts`` (the simulators group), each message as
    ``host <host>: <key>: <problem>``. Empty when the fleet is good."""
    problems = _Problems()
    defaults = defaults or {}
    fault_types = fault_types or {}
    hosts = list(hosts)
    first_classes: Any = None
    first_host = ""
    owners: dict[str, tuple[str, str]] = {}
    for host in hosts:
        classes = _hostvar(hostvars, host, "fleet_classes", [])
        counts = _hostvar(hostvars, host, "fleet_devices", {})
        if not isinstance(classes, list):
            problems.add(host, "fleet_classes", "must be a list of class definitions")
            continue
        if first_classes is None:
            first_classes, first_host = classes, host
            names: list[Any] = []
            for index, entry in enumerate(classes):
                _check_class(
                    problems,
                    host,
                    index,
                    entry,
                    cards=cards,
                    defaults=defaults,
                    fault_types=fault_types,
                )
                names.append(entry.get("name") if isinstance(entry, Mapping) else None)
            for name in {n for n in names if names.count(n) > 1}:
                problems.add(host, f"fleet_classes[{name}]", "class defined twice")
        elif classes != first_classes:
            problems.add(
                host,
                "fleet_classes",
                f"differs from host {first_host}'s; define the classes once for all simulator"
                " hosts (inventory group_vars/all/fleet.yml)",
            )
            continue
        known = {e.get("name") for e in classes if isinstance(e, Mapping)}
        if not isinstance(counts, Mapping):
            problems.add(host, "fleet_devices", f"must map class names to counts, got {counts!r}")
            continue
        for device_class, count in counts.items():
            key = f"fleet_devices.{device_class}"
            if device_class not in known:
                defined = ", ".join(sorted(str(k) for k in known)) or "none"
                problems.add(host, key, f"unknown class (fleet_classes defines: {defined})")
                continue
            if not _is_count(count):
                problems.add(host, key, f"count must be a whole number >= 0, got {count!r}")
                continue
            if count > MAX_PER_CLASS:
                problems.add(host, key, f"count {count} is above {MAX_PER_CLASS} (5-digit names)")
                continue
            if count == 0:
                continue
            first = fleet_device_name(host, str(device_class), 1)
            if not DEVICE_NAME.match(first):
                problems.add(
                    host,
                    key,
                    f"device names such as {first} would not match {DEVICE_NAME.pattern}"
                    " (rename the host or the class)",
                )
                continue
            _check_duplicates(problems, owners, host, str(device_class))
    return problems.items


def _check_duplicates(
    problems: _Problems,
    owners: dict[str, tuple[str, str]],
    host: str,
    device_class: str,
) -> None:
    """Names collide only through equal ``<host>-<class>`` prefixes (host ``a-b`` with class
    ``c`` and host ``a`` with class ``b-c``); the first shared number names the duplicate."""
    prefix = f"{host}-{device_class}"
    if prefix in owners:
        other_host, other_class = owners[prefix]
        problems.add(
            host,
            f"fleet_devices.{device_class}",
            f"duplicate device names: {fleet_device_name(host, device_class, 1)} is also a"
            f" device of host {other_host} (class {other_class})",
        )
        return
    owners[prefix] = (host, device_class)


# ---- resolution and planning --------------------------------------------------------------


def fleet_resolve_classes(
    classes: Sequence[Mapping[str, Any]],
    cards: Mapping[str, Mapping[str, Any]],
    defaults: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The classes with defaults filled in and what provisioning needs from the model card
    (``card``: name, version, device_class, labels, arena/flash bytes, the target, file)."""
    resolved = []
    for entry in classes:
        merged = {**(defaults or {}), **entry}
        card = cards.get(_card_key(merged.get("model"), merged.get("model_version")))
        if card is None:
            raise AnsibleFilterError(
                f"class {merged.get('name')}: no model card "
                f"{_card_key(merged.get('model'), merged.get('model_version'))} "
                "(run the fleet validation first)"
            )
        targets = {str(t.get("device")): t for t in card.get("targets") or []}
        out: dict[str, Any] = {key: merged[key] for key in CLASS_KEYS if key in merged}
        out["window"] = int(merged.get("window") or _card_window(card))
        for key in FLOAT_KEYS:
            out[key] = float(merged[key])
        out["buffer_size"] = int(merged["buffer_size"])
        out["offline_after_s"] = int(merged["offline_after_s"])
        out["faults"] = [_resolve_fault(f) for f in merged.get("faults") or []]
        out["drift"] = _resolve_drift(merged.get("drift") or {})
        out["alarms"] = [_resolve_alarm(a) for a in merged.get("alarms") or []]
        out["card"] = {
            "name": card.get("name"),
            "version": card.get("version"),
            "device_class": card.get("device_class"),
            "labels": list(card.get("labels") or []),
            "arena_bytes": card.get("arena_bytes"),
            "flash_bytes": card.get("flash_bytes"),
            "sha256": card.get("sha256"),
            "file": card.get("file"),
            "target": dict(targets.get(str(merged.get("hardware")), {})),
        }
        resolved.append(out)
    return resolved


def _resolve_fault(fault: Mapping[str, Any]) -> dict[str, Any]:
    start = _range(fault.get("start_s", 0)) or (0.0, 0.0)
    return {
        "type": fault["type"],
        "share": float(fault["share"]),
        "start_s": list(start),
        "ramp_s": float(fault.get("ramp_s", 0)),
        "severity": float(fault.get("severity", 1.0)),
    }


def _resolve_drift(drift: Mapping[str, Any]) -> dict[str, Any]:
    start = _range(drift.get("start_s", 0)) or (0.0, 0.0)
    return {
        "share": float(drift.get("share", 0)),
        "start_s": list(start),
        "offset_per_h": float(drift.get("offset_per_h", 0)),
        "gain_per_h": float(drift.get("gain_per_h", 0)),
        "noise_per_h": float(drift.get("noise_per_h", 0)),
    }


def _resolve_alarm(alarm: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": str(alarm["type"]),
        "severity": str(alarm.get("severity", "MAJOR")),
        "key": str(alarm.get("key", "anomaly_score")),
        "above": float(alarm["above"]),
        "for_s": int(alarm.get("for_s", 0)),
        "clear_below": float(alarm["clear_below"]),
    }


def _pick(start: tuple[float, float] | list[float], name: str, salt: str) -> float:
    low, high = start
    return round(low + (high - low) * _unit(name, salt), 1)


def _fault_for(host: str, cls: Mapping[str, Any], number: int, name: str) -> dict[str, Any] | None:
    position = (number * PHI + _unit(host, cls["name"], "fault")) % 1.0
    bound = 0.0
    for fault in cls["faults"]:
        bound += fault["share"]
        if position < bound:
            return {
                "type": fault["type"],
                "start_s": _pick(fault["start_s"], name, "fault-start"),
                "ramp_s": fault["ramp_s"],
                "severity": fault["severity"],
            }
    return None


def _drift_for(host: str, cls: Mapping[str, Any], number: int, name: str) -> dict[str, Any] | None:
    drift = cls["drift"]
    position = (number * SQRT2 + _unit(host, cls["name"], "drift")) % 1.0
    if position >= drift["share"]:
        return None
    return {
        "start_s": _pick(drift["start_s"], name, "drift-start"),
        "offset_per_h": drift["offset_per_h"],
        "gain_per_h": drift["gain_per_h"],
        "noise_per_h": drift["noise_per_h"],
    }


def fleet_host_plan(
    host: str, counts: Mapping[str, int] | None, classes: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """One host's devices file (devices-file.v1) without passwords.

    ``classes`` are resolved classes. The file lists the classes the host names in
    ``fleet_devices`` (all classes when it names none: the schema wants at least one), and
    its devices class by class in ``fleet_classes`` order, numbered from 00001.
    """
    counts = counts or {}
    by_name = {c["name"]: c for c in classes}
    unknown = sorted(set(counts) - set(by_name))
    if unknown:
        raise AnsibleFilterError(f"host {host}: fleet_devices: unknown classes {unknown}")
    listed = [c for c in classes if c["name"] in counts] or list(classes)
    document: dict[str, Any] = {
        "schema": 1,
        "host": host,
        "classes": {c["name"]: {key: c[key] for key in SIM_CLASS_KEYS} for c in listed},
        "devices": [],
    }
    for cls in listed:
        count = counts.get(cls["name"], 0)
        if not _is_count(count):
            raise AnsibleFilterError(f"host {host}: fleet_devices.{cls['name']}: bad count")
        for number in range(1, count + 1):
            name = fleet_device_name(host, cls["name"], number)
            document["devices"].append(
                {
                    "name": name,
                    "class": cls["name"],
                    "seed": device_seed(name),
                    "fault": _fault_for(host, cls, number, name),
                    "drift": _drift_for(host, cls, number, name),
                }
            )
    return document


def fleet_host_summary(
    document: Mapping[str, Any], classes: Sequence[Mapping[str, Any]], models_dir: str
) -> dict[str, Any]:
    """What a host's devices file holds, without secrets: device counts per class and the
    model files (card and .tflite, absolute paths on the controller) its classes need."""
    per_class = dict.fromkeys(document.get("classes") or {}, 0)
    for device in document.get("devices") or []:
        per_class[device["class"]] = per_class.get(device["class"], 0) + 1
    models: dict[str, dict[str, Any]] = {}
    for cls in classes:
        if cls["name"] not in per_class:
            continue
        stem = _card_key(cls["model"], cls["model_version"])
        card = cls.get("card") or {}
        models[stem] = {
            "model": cls["model"],
            "version": cls["model_version"],
            "card": f"{models_dir}/{stem}.json",
            "file": f"{models_dir}/{card.get('file') or stem + '.tflite'}",
            "sha256": card.get("sha256"),
        }
    return {
        "devices": sum(per_class.values()),
        "classes": per_class,
        "models": [models[k] for k in sorted(models)],
    }


def fleet_name_pattern(hosts: Iterable[str], classes: Iterable[str]) -> str:
    """A regular expression matching exactly the names ``<host>-<class>-<NNNNN>`` of these
    hosts and classes (what the fleet owns, for purging EMQX users and ACL)."""
    host_part = "|".join(sorted({re.escape(h) for h in hosts}))
    class_part = "|".join(sorted({re.escape(c) for c in classes}))
    if not host_part or not class_part:
        return r"(?!)"  # matches nothing
    return f"(?:{host_part})-(?:{class_part})-[0-9]{{{NUMBER_DIGITS}}}"


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "fleet_problems": fleet_problems,
            "fleet_resolve_classes": fleet_resolve_classes,
            "fleet_host_plan": fleet_host_plan,
            "fleet_device_name": fleet_device_name,
            "fleet_name_pattern": fleet_name_pattern,
            "fleet_host_summary": fleet_host_summary,
        }
