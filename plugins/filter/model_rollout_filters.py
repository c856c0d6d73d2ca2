"""Filters of the model_rollout role: which devices, which canaries, is the model fit for
the class, are the canaries healthy.

Pure functions, no I/O: the model cards come from the ``fleet_model_cards`` lookup, the
telemetry from the ``tb_telemetry_latest`` module (ThingsBoard's latest time series, as the
IoT Gateway maps the devices' payloads: ``model_version`` from inference messages,
``outcome``/``version``/``reason`` from OTA results, ``errors`` from health reports).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

NUMBER_DIGITS = 5  # docs/architecture.md: <host>-<class>-<NNNNN>


def _hostvar(hostvars: Mapping[str, Any], host: str, name: str, default: Any) -> Any:
    try:
        value = hostvars[host][name]
    except KeyError:
        return default
    return default if value is None else value


def model_rollout_devices(
    hosts: Iterable[str], hostvars: Mapping[str, Any], device_class: str
) -> list[str]:
    """Every device of ``device_class`` the inventory defines (``fleet_devices`` of the
    simulator ``hosts``), named as roles/fleet names them, sorted."""
    names = []
    for host in hosts:
        counts = _hostvar(hostvars, host, "fleet_devices", {})
        count = counts.get(device_class, 0) if isinstance(counts, Mapping) else 0
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise AnsibleFilterError(f"host {host}: fleet_devices.{device_class}: bad count")
        names += [f"{host}-{device_class}-{n:0{NUMBER_DIGITS}d}" for n in range(1, count + 1)]
    return sorted(names)


def model_rollout_canary_count(total: int, fraction: float, count: int = 0) -> int:
    """``count`` when it is set (> 0), else ``ceil(fraction * total)``; at least one device
    and at most all of them (0 when there are none)."""
    if total <= 0:
        return 0
    wanted = int(count) if int(count) > 0 else math.ceil(float(fraction) * total - 1e-9)
    return max(1, min(total, wanted))


def _rank(salt: str, name: str) -> bytes:
    return hashlib.sha256(f"{salt}\0{name}".encode()).digest()


def model_rollout_canaries(
    devices: Sequence[str], fraction: float, count: int = 0, salt: str = ""
) -> list[str]:
    """The canary devices: a fixed pseudo-random pick (by sha256 of ``salt`` and the name),
    so that a re-run picks the same devices, the pick spreads over the simulator hosts, and
    a larger fraction keeps the devices a smaller one picked. Sorted."""
    ranked = sorted(devices, key=lambda name: _rank(salt, name))
    return sorted(ranked[: model_rollout_canary_count(len(ranked), fraction, count)])


# ---- inputs ----------------------------------------------------------------------------------

VERSION = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+$")
MODEL = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _as_whole(value: Any) -> int | None:
    number = _as_number(value)
    return int(number) if number is not None and number == int(number) else None


def model_rollout_input_problems(
    settings: Mapping[str, Any], classes: Sequence[Mapping[str, Any]]
) -> list[str]:
    """What is wrong with the role's inputs (``settings``: the model_rollout_* variables
    without their prefix), each message naming the variable. ``classes`` is fleet_classes."""
    problems = []
    action = settings.get("action")
    if action not in ("rollout", "rollback"):
        problems.append(f"model_rollout_action: rollout or rollback, got {action!r}")
    known = [str(c.get("name")) for c in classes if isinstance(c, Mapping)]
    name = settings.get("class")
    if not name:
        problems.append(f"model_rollout_class: name a class of fleet_classes ({', '.join(known)})")
    elif name not in known:
        problems.append(
            f"model_rollout_class: {name!r} is not a class of fleet_classes"
            f" ({', '.join(known) or 'none defined'})"
        )
    if action == "rollout":
        version = str(settings.get("version") or "")
        if not VERSION.match(version):
            problems.append(f"model_rollout_version: a version x.y.z, got {version!r}")
        model = settings.get("model")
        if model and not MODEL.match(str(model)):
            problems.append(f"model_rollout_model: {model!r} is not a model name")
    ranges: list[tuple[str, Any, float, float, bool, bool]] = [
        # name, value, low, high, low included, whole number
        ("canary_fraction", settings.get("canary_fraction"), 0.0, 1.0, False, False),
        ("canary_count", settings.get("canary_count"), 0, math.inf, True, True),
        ("health_window_s", settings.get("health_window_s"), 1, math.inf, True, True),
        ("poll_interval_s", settings.get("poll_interval_s"), 1, math.inf, True, True),
        ("min_adoption", settings.get("min_adoption"), 0.0, 1.0, False, False),
        ("max_failure_rate", settings.get("max_failure_rate"), 0.0, 1.0, True, False),
        ("clock_skew_s", settings.get("clock_skew_s"), 0, math.inf, True, True),
        ("max_message_bytes", settings.get("max_message_bytes"), 1024, math.inf, True, True),
    ]
    for key, value, low, high, low_included, whole in ranges:
        number = _as_whole(value) if whole else _as_number(value)
        above = number is not None and (number >= low if low_included else number > low)
        if number is None or not above or number > high:
            kind = "a whole number" if whole else "a number"
            bounds = f"{'>=' if low_included else '>'} {low:g}" + (
                f" and <= {high:g}" if high != math.inf else ""
            )
            problems.append(f"model_rollout_{key}: {kind} {bounds}, got {value!r}")
    if action == "rollout":
        rate = _as_number(settings.get("max_failure_rate"))
        if rate is not None and rate >= 1.0:
            problems.append("model_rollout_max_failure_rate: below 1 (1 would accept anything)")
    window = _as_whole(settings.get("health_window_s"))
    poll = _as_whole(settings.get("poll_interval_s"))
    if window is not None and poll is not None and poll > window > 0:
        problems.append(
            f"model_rollout_poll_interval_s: {poll} is longer than the health window ({window})"
        )
    return problems


# ---- is the model fit for the class ---------------------------------------------------------


def _shape(card: Mapping[str, Any], part: str) -> list[int]:
    return [int(d) for d in ((card.get(part) or {}).get("shape") or [])]


def model_rollout_problems(
    device_class: Mapping[str, Any],
    cards: Mapping[str, Mapping[str, Any]],
    model: str,
    version: str,
    *,
    data_sha256: str | None,
    data_size: int | None,
    models_dir: str = "",
) -> list[str]:
    """Everything that makes ``model`` ``version`` unfit to replace the model of the class
    (an entry of ``fleet_classes_resolved``); each message names the variable at fault.

    ``data_sha256``/``data_size`` describe ``<model>-<version>.tflite`` (None: no such file).
    The announcement carries the model as a data: URL without its card, so the devices keep
    the running card's labels and anomaly score: those must not change, nor the tensors.
    """
    name = device_class.get("name")
    stem = f"{model}-{version}"
    where = f"{models_dir}/{stem}" if models_dir else stem
    current_stem = f"{device_class.get('model')}-{device_class.get('model_version')}"
    current = cards.get(current_stem)
    if current is None:
        return [f"fleet_classes[{name}]: no model card {current_stem}.json (the running model)"]
    card = cards.get(stem)
    if card is None:
        same = sorted(k for k, c in cards.items() if c.get("name") == model)
        known = ", ".join(same) or "none"
        return [f"model_rollout_version: no model card {where}.json (cards of {model}: {known})"]
    if data_sha256 is None or data_size is None:
        return [f"model_rollout_version: no model file {where}.tflite beside its card"]
    problems = []
    if stem == current_stem:
        problems.append(
            f"model_rollout_version: {stem} is already the model of class {name}"
            f" (fleet_classes[{name}].model_version)"
        )
    if card.get("sha256") != data_sha256:
        problems.append(
            f"model_rollout_version: {stem}.tflite has sha256 {data_sha256} but its card says"
            f" {card.get('sha256')}"
        )
    if card.get("flash_bytes") != data_size:
        problems.append(
            f"model_rollout_version: {stem}.tflite is {data_size} bytes but its card says"
            f" flash_bytes {card.get('flash_bytes')}"
        )
    if data_sha256 == current.get("sha256") and stem != current_stem:
        problems.append(
            f"model_rollout_version: {stem}.tflite is the same file as the running {current_stem}"
            " (devices ignore an announcement of the model they run)"
        )
    if card.get("device_class") != current.get("device_class"):
        problems.append(
            f"model_rollout_model: {stem} is a {card.get('device_class')} model; class {name}"
            f" runs {current.get('device_class')} models"
        )
    for label, part in (("input", "input"), ("output", "output")):
        if _shape(card, part) != _shape(current, part):
            problems.append(
                f"model_rollout_model: {stem} takes {label} {_shape(card, part)}, the running"
                f" {current_stem} {_shape(current, part)}"
            )
    if list(card.get("labels") or []) != list(current.get("labels") or []):
        problems.append(
            f"model_rollout_model: {stem} labels {card.get('labels')} differ from the running"
            f" {current_stem}'s {current.get('labels')} (an announcement carries no card)"
        )
    if card.get("anomaly_score") != current.get("anomaly_score"):
        problems.append(
            f"model_rollout_model: {stem}'s anomaly_score differs from the running"
            f" {current_stem}'s (an announcement carries no card)"
        )
    problems += _budget_problems(device_class, card, stem)
    return problems


def _budget_problems(
    device_class: Mapping[str, Any], card: Mapping[str, Any], stem: str
) -> list[str]:
    name = device_class.get("name")
    hardware = device_class.get("hardware")
    targets = {str(t.get("device")): t for t in card.get("targets") or []}
    if hardware not in targets:
        return [
            f"model_rollout_version: {stem} does not target {hardware!r}, the hardware of class"
            f" {name} (its targets: {', '.join(targets) or 'none'})"
        ]
    target = targets[str(hardware)]
    problems = []
    for need, have, override, what in (
        ("arena_bytes", "ram_bytes", "ram_budget_bytes", "tensor arena"),
        ("flash_bytes", "flash_bytes", "flash_budget_bytes", "flash"),
    ):
        budget = device_class.get(override)
        source = f"{override} of class {name}"
        if budget is None:
            budget, source = target.get(have), f"{hardware} {have} in the card"
        required = card.get(need)
        if isinstance(required, int) and isinstance(budget, int) and required > budget:
            problems.append(
                f"model_rollout_version: {stem} needs {required} bytes of {what} ({need}) but"
                f" class {name} has {budget} ({source})"
            )
    return problems


# ---- announcements --------------------------------------------------------------------------

# A PUBLISH's bytes besides the payload: fixed header (up to 5), topic length (2) and topic
# (tinyml/devices/<name up to 128>/ota), packet id (2), properties.
PUBLISH_OVERHEAD = 256


def model_rollout_files(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``slurp`` results (looped over model stems, failures allowed) -> stem to
    ``{sha256, size, content}`` (content base64), or None for a file that could not be read."""
    files: dict[str, Any] = {}
    for result in results:
        stem = str(result.get("item", ""))
        content = result.get("content")
        if result.get("failed") or not isinstance(content, str):
            files[stem] = None
            continue
        data = base64.b64decode(content)
        files[stem] = {
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "content": content,
        }
    return files


def model_rollout_announcements(files: Mapping[str, Any], device_class: str) -> dict[str, str]:
    """Stem to the OTA announcement (device_sim schema ota-announcement.v1) of each model file
    of ``model_rollout_files``: the model travels in the message as a base64 data: URL, so
    the devices need nothing but the broker."""
    announcements = {}
    for stem, file in files.items():
        model, _, version = stem.rpartition("-")
        if not file or not model or not VERSION.match(version):
            raise AnsibleFilterError(f"no model file for {stem!r}")
        document = {
            "class": device_class,
            "model": model,
            "version": version,
            "sha256": file["sha256"],
            "location": "data:application/octet-stream;base64," + str(file["content"]),
        }
        announcements[stem] = json.dumps(document, separators=(",", ":"))
    return announcements


def model_rollout_oversized(announcements: Mapping[str, str], limit: int) -> list[str]:
    """Models whose announcement would not fit in an MQTT message of ``limit`` bytes."""
    return sorted(
        stem
        for stem, payload in announcements.items()
        if len(payload.encode()) + PUBLISH_OVERHEAD > int(limit)
    )


# ---- health ---------------------------------------------------------------------------------


def _entry(telemetry: Mapping[str, Any], device: str, key: str) -> tuple[int, Any] | None:
    """(ts, value) of a device's latest ``key``, or None."""
    found = (telemetry.get(device) or {}).get(key)
    if not isinstance(found, Mapping) or "ts" not in found:
        return None
    return int(found["ts"]), found.get("value")


def model_rollout_health(
    telemetry: Mapping[str, Any],
    devices: Sequence[str],
    version: str,
    since_ms: int,
    *,
    baseline: Mapping[str, Any] | None = None,
    min_share: float = 1.0,
    max_failure_rate: float = 0.0,
) -> dict[str, Any]:
    """The health of ``devices`` that were told to run ``version`` at ``since_ms``.

    - adopted: the latest ``model_version`` (inference telemetry) is ``version``, reported
      at or after ``since_ms`` (device clock, ms);
    - rejected: the latest OTA result since then is ``outcome: rejected`` for ``version``;
    - errors: the health counter ``errors`` rose above its value in ``baseline`` (the
      telemetry read before the announcement);
    - pending: reports since then, still another version; silent: nothing since then.

    Failures are the devices that rejected or whose errors rose. ``failing`` when their
    share exceeds ``max_failure_rate`` (the rollout cannot recover: both only grow);
    ``healthy`` when the adopted share reaches ``min_share`` and it is not failing.
    """
    baseline = baseline or {}
    adopted, pending, silent, errors = [], [], [], []
    rejected: dict[str, str] = {}
    since = int(since_ms)
    for device in devices:
        running = _entry(telemetry, device, "model_version")
        fresh = running is not None and running[0] >= since
        outcome, announced = (
            _entry(telemetry, device, "outcome"),
            _entry(telemetry, device, "version"),
        )
        if (
            outcome is not None
            and announced is not None
            and outcome[0] >= since
            and outcome[1] == "rejected"
            and announced[1] == version
        ):
            reason = _entry(telemetry, device, "reason")
            rejected[device] = str(reason[1]) if reason is not None else ""
        now_errors = _entry(telemetry, device, "errors")
        then_errors = _entry(baseline, device, "errors")
        if now_errors is not None and then_errors is not None and now_errors[0] > then_errors[0]:
            rose_from, rose_to = _as_number(then_errors[1]), _as_number(now_errors[1])
            if rose_from is not None and rose_to is not None and rose_to > rose_from:
                errors.append(device)
        if fresh and running is not None and running[1] == version:
            adopted.append(device)
        elif device in rejected:
            pass
        elif fresh:
            pending.append(device)
        else:
            silent.append(device)
    total = len(devices)
    failed = sorted(set(rejected) | set(errors))
    share = len(adopted) / total if total else 0.0
    rate = len(failed) / total if total else 0.0
    failing = rate > float(max_failure_rate)
    healthy = total > 0 and share >= float(min_share) and not failing
    summary = (
        f"{len(adopted)}/{total} run {version} (share {share:.2f}, need {float(min_share):.2f});"
        f" {len(failed)}/{total} failed (rate {rate:.2f}, allowed {float(max_failure_rate):.2f})"
    )
    details = [f"{d} rejected it: {r or 'no reason given'}" for d, r in sorted(rejected.items())]
    details += [f"{d} reported more errors" for d in errors]
    if silent:
        details.append(f"no fresh report from {', '.join(silent)}")
    if pending:
        details.append(f"still another version on {', '.join(pending)}")
    if details:
        summary += ": " + "; ".join(details)
    return {
        "adopted": adopted,
        "rejected": rejected,
        "errors": errors,
        "pending": pending,
        "silent": silent,
        "failed": failed,
        "share": round(share, 4),
        "failure_rate": round(rate, 4),
        "failing": failing,
        "healthy": healthy,
        "summary": summary,
    }


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "model_rollout_input_problems": model_rollout_input_problems,
            "model_rollout_devices": model_rollout_devices,
            "model_rollout_canary_count": model_rollout_canary_count,
            "model_rollout_canaries": model_rollout_canaries,
            "model_rollout_problems": model_rollout_problems,
            "model_rollout_files": model_rollout_files,
            "model_rollout_announcements": model_rollout_announcements,
            "model_rollout_oversized": model_rollout_oversized,
            "model_rollout_health": model_rollout_health,
        }
