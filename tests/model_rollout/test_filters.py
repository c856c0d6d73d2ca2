"""plugins/filter/model_rollout_filters.py: devices, canaries, input and model checks, the
announcement, the canaries' health."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from tinyml_sim.ota import Announcement
from tinyml_sim.schemas import validate

from tests.conftest import REPO_ROOT, load_source

MODELS = REPO_ROOT / "files" / "models"


f = load_source("plugins/filter/model_rollout_filters.py")


def card(stem: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((MODELS / f"{stem}.json").read_text())
    return loaded


def cards(*extra: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {p.stem: card(p.stem) for p in MODELS.glob("*.json")}
    found.update({f"{c['name']}-{c['version']}": c for c in extra})
    return found


def variant(version: str = "1.1.0", **changes: Any) -> tuple[dict[str, Any], bytes]:
    """A vibration-cnn card for other bytes (1.0.0's with one byte appended)."""
    data = (MODELS / "vibration-cnn-1.0.0.tflite").read_bytes() + b"\0"
    new = copy.deepcopy(card("vibration-cnn-1.0.0"))
    new.update(
        version=version,
        sha256=hashlib.sha256(data).hexdigest(),
        flash_bytes=len(data),
        file=f"vibration-cnn-{version}.tflite",
        **changes,
    )
    return new, data


VIBRATION = {
    "name": "vibration",
    "model": "vibration-cnn",
    "model_version": "1.0.0",
    "hardware": "esp32",
}


def problems(cls: dict[str, Any], new: dict[str, Any], data: bytes, **kwargs: Any) -> list[str]:
    found: list[str] = f.model_rollout_problems(
        cls,
        cards(new),
        new["name"],
        new["version"],
        data_sha256=kwargs.get("sha", hashlib.sha256(data).hexdigest()),
        data_size=kwargs.get("size", len(data)),
    )
    return found


# ---- devices and canaries -------------------------------------------------------------------


def test_devices_are_named_as_the_fleet_role_names_them() -> None:
    hostvars = {
        "lab-vm2": {"fleet_devices": {"vibration": 2, "gesture": 1}},
        "lab-vm1": {"fleet_devices": {"vibration": 1}},
        "lab-vm3": {},
    }
    assert f.model_rollout_devices(["lab-vm1", "lab-vm2", "lab-vm3"], hostvars, "vibration") == [
        "lab-vm1-vibration-00001",
        "lab-vm2-vibration-00001",
        "lab-vm2-vibration-00002",
    ]
    with pytest.raises(AnsibleFilterError, match=r"lab-vm1: fleet_devices\.vibration"):
        f.model_rollout_devices(
            ["lab-vm1"], {"lab-vm1": {"fleet_devices": {"vibration": -1}}}, "vibration"
        )


@pytest.mark.parametrize(
    ("total", "fraction", "count", "expected"),
    [
        (100, 0.05, 0, 5),
        (101, 0.05, 0, 6),  # rounded up
        (10, 0.01, 0, 1),  # at least one
        (10, 0.05, 3, 3),  # a count wins
        (10, 0.05, 50, 10),  # never more than all
        (3, 1.0, 0, 3),
        (0, 0.5, 0, 0),
    ],
)
def test_canary_count(total: int, fraction: float, count: int, expected: int) -> None:
    assert f.model_rollout_canary_count(total, fraction, count) == expected


def test_canaries_are_a_stable_spread_pick() -> None:
    devices = [f"lab-vm{h}-vibration-{n:05d}" for h in (1, 2, 3) for n in range(1, 101)]
    few = f.model_rollout_canaries(devices, 0.05, 0, "vibration")
    more = f.model_rollout_canaries(list(reversed(devices)), 0.2, 0, "vibration")
    assert len(few) == 15
    assert few == sorted(few)
    assert set(few) <= set(more)  # a larger fraction keeps the smaller one's devices
    assert len({name.split("-vibration")[0] for name in more}) == 3  # every host
    assert few == f.model_rollout_canaries(devices, 0.05, 0, "vibration")
    assert few != f.model_rollout_canaries(devices, 0.05, 0, "gesture")


# ---- inputs -----------------------------------------------------------------------------------

GOOD = {
    "action": "rollout",
    "class": "vibration",
    "model": "",
    "version": "1.1.0",
    "canary_fraction": 0.05,
    "canary_count": 0,
    "health_window_s": 300,
    "poll_interval_s": 10,
    "min_adoption": 0.9,
    "max_failure_rate": 0.0,
    "clock_skew_s": 30,
    "max_message_bytes": 1048576,
}
CLASSES = [{"name": "vibration"}, {"name": "gesture"}]


def test_good_inputs_pass_also_as_strings() -> None:
    assert f.model_rollout_input_problems(GOOD, CLASSES) == []
    as_text = {k: str(v) for k, v in GOOD.items()}  # -e key=value gives strings
    assert f.model_rollout_input_problems(as_text, CLASSES) == []
    rollback = {**GOOD, "action": "rollback", "version": ""}
    assert f.model_rollout_input_problems(rollback, CLASSES) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"class": "robot"}, "model_rollout_class: 'robot' is not a class of fleet_classes"),
        ({"class": ""}, "model_rollout_class: name a class"),
        ({"version": "1.1"}, "model_rollout_version: a version x.y.z, got '1.1'"),
        ({"model": "Vib CNN"}, "model_rollout_model: 'Vib CNN' is not a model name"),
        ({"action": "promote"}, "model_rollout_action: rollout or rollback"),
        ({"canary_fraction": 0}, "model_rollout_canary_fraction: a number > 0 and <= 1"),
        ({"canary_fraction": 1.5}, "model_rollout_canary_fraction"),
        ({"canary_count": -1}, "model_rollout_canary_count: a whole number >= 0"),
        ({"canary_count": 2.5}, "model_rollout_canary_count"),
        ({"health_window_s": "soon"}, "model_rollout_health_window_s: a whole number >= 1"),
        ({"min_adoption": 0}, "model_rollout_min_adoption: a number > 0 and <= 1"),
        ({"max_failure_rate": 1}, "model_rollout_max_failure_rate: below 1"),
        ({"max_failure_rate": -0.1}, "model_rollout_max_failure_rate: a number >= 0"),
        ({"poll_interval_s": 400}, "model_rollout_poll_interval_s: 400 is longer than"),
        ({"max_message_bytes": 10}, "model_rollout_max_message_bytes: a whole number >= 1024"),
    ],
)
def test_bad_inputs_are_named(change: dict[str, Any], message: str) -> None:
    found = f.model_rollout_input_problems({**GOOD, **change}, CLASSES)
    assert any(message in p for p in found), found


# ---- is the model fit for the class -------------------------------------------------------


def test_a_compatible_new_version_passes() -> None:
    new, data = variant()
    assert problems(VIBRATION, new, data) == []


def test_the_running_version_and_the_same_file_are_refused() -> None:
    data = (MODELS / "vibration-cnn-1.0.0.tflite").read_bytes()
    found = problems(VIBRATION, card("vibration-cnn-1.0.0"), data)
    assert any("is already the model of class vibration" in p for p in found), found
    same_bytes = {**card("vibration-cnn-1.0.0"), "version": "1.0.1"}
    found = problems(VIBRATION, same_bytes, data)
    assert any("is the same file as the running vibration-cnn-1.0.0" in p for p in found), found


def test_missing_card_or_file() -> None:
    found = f.model_rollout_problems(
        VIBRATION,
        cards(),
        "vibration-cnn",
        "9.9.9",
        data_sha256=None,
        data_size=None,
        models_dir="/m",
    )
    assert found == [
        "model_rollout_version: no model card /m/vibration-cnn-9.9.9.json"
        " (cards of vibration-cnn: vibration-cnn-1.0.0)"
    ]
    new, _ = variant()
    found = f.model_rollout_problems(
        VIBRATION, cards(new), "vibration-cnn", "1.1.0", data_sha256=None, data_size=None
    )
    assert found == [
        "model_rollout_version: no model file vibration-cnn-1.1.0.tflite beside its card"
    ]


def test_a_file_its_card_does_not_describe_is_refused() -> None:
    new, data = variant()
    found = problems(VIBRATION, new, data, sha="0" * 64, size=10)
    assert any("has sha256 " + "0" * 64 + " but its card says" in p for p in found), found
    assert any("is 10 bytes but its card says flash_bytes" in p for p in found), found


def test_a_model_of_another_kind_is_refused() -> None:
    gesture = copy.deepcopy(card("gesture-cnn-1.0.0"))
    gesture.update(name="vibration-cnn", version="2.0.0")
    data = (MODELS / "gesture-cnn-1.0.0.tflite").read_bytes()
    found = " ".join(problems(VIBRATION, gesture, data))
    assert "vibration-cnn-2.0.0 is a gesture model; class vibration runs vibration models" in found
    assert "takes input [1, 64, 6], the running vibration-cnn-1.0.0 [1, 128, 3]" in found
    assert "labels ['idle', 'left', 'right'] differ" in found
    assert "anomaly_score differs" in found


def test_hardware_and_budgets_are_checked() -> None:
    new, data = variant(
        targets=[t for t in card("vibration-cnn-1.0.0")["targets"] if t["device"] != "esp32"]
    )
    assert any("does not target 'esp32'" in p for p in problems(VIBRATION, new, data))
    new, data = variant()
    tight = {**VIBRATION, "ram_budget_bytes": 1024, "flash_budget_bytes": 1024}
    found = " ".join(problems(tight, new, data))
    arena = new["arena_bytes"]
    assert (
        f"needs {arena} bytes of tensor arena (arena_bytes) but class vibration has 1024" in found
    )
    assert f"needs {len(data)} bytes of flash (flash_bytes) but class vibration has 1024" in found


# ---- announcements ----------------------------------------------------------------------------


def test_the_announcement_is_what_the_simulator_accepts(tmp_path: Path) -> None:
    data = (MODELS / "vibration-cnn-1.0.0.tflite").read_bytes()
    (tmp_path / "vibration-cnn-1.0.0.tflite").write_bytes(data)
    results = [
        {"item": "vibration-cnn-1.0.0", "content": base64.b64encode(data).decode()},
        {"item": "vibration-cnn-9.0.0", "failed": True, "msg": "file not found"},
    ]
    files = f.model_rollout_files(results)
    assert files["vibration-cnn-9.0.0"] is None
    assert files["vibration-cnn-1.0.0"]["sha256"] == card("vibration-cnn-1.0.0")["sha256"]
    assert files["vibration-cnn-1.0.0"]["size"] == len(data)
    del files["vibration-cnn-9.0.0"]
    payload = f.model_rollout_announcements(files, "vibration")["vibration-cnn-1.0.0"]
    validate("ota-announcement", json.loads(payload))
    announcement = Announcement.parse(payload.encode(), "vibration")
    assert (announcement.model, announcement.version) == ("vibration-cnn", "1.0.0")
    assert announcement.location.startswith("data:application/octet-stream;base64,")
    body = announcement.location.split(",", 1)[1]
    assert base64.b64decode(body) == data
    # A ~7.7 KB model makes a ~10 KB message: far below EMQX's 1 MB default.
    assert f.model_rollout_oversized({"m": payload}, 1048576) == []
    assert f.model_rollout_oversized({"m": payload}, 8192) == ["m"]


# ---- health -----------------------------------------------------------------------------------

SINCE = 1_000_000
DEVICES = ["d1", "d2", "d3", "d4"]


def ts(value: Any, at: int) -> dict[str, Any]:
    return {"ts": at, "value": value}


def test_health_sorts_the_canaries() -> None:
    telemetry = {
        "d1": {"model_version": ts("1.1.0", SINCE + 5), "errors": ts(0, SINCE + 5)},
        "d2": {"model_version": ts("1.0.0", SINCE + 5)},  # pending
        "d3": {"model_version": ts("1.1.0", SINCE - 5)},  # stale: silent
        "d4": {
            "model_version": ts("1.0.0", SINCE + 5),
            "outcome": ts("rejected", SINCE + 3),
            "version": ts("1.1.0", SINCE + 3),
            "reason": ts("sha256 mismatch", SINCE + 3),
        },
    }
    health = f.model_rollout_health(
        telemetry, DEVICES, "1.1.0", SINCE, min_share=0.25, max_failure_rate=0.25
    )
    assert health["adopted"] == ["d1"]
    assert health["pending"] == ["d2"]
    assert health["silent"] == ["d3"]
    assert health["rejected"] == {"d4": "sha256 mismatch"}
    assert (health["share"], health["failure_rate"]) == (0.25, 0.25)
    assert health["healthy"] is True
    assert health["failing"] is False
    assert "d4 rejected it: sha256 mismatch" in health["summary"]
    strict = f.model_rollout_health(telemetry, DEVICES, "1.1.0", SINCE)
    assert strict["failing"] is True
    assert strict["healthy"] is False


def test_rising_errors_count_as_failures() -> None:
    baseline = {"d1": {"errors": ts(2, SINCE - 1000)}}
    now = {"d1": {"model_version": ts("1.1.0", SINCE + 5), "errors": ts(5, SINCE + 6)}}
    health = f.model_rollout_health(now, ["d1"], "1.1.0", SINCE, baseline=baseline)
    assert health["errors"] == ["d1"]
    assert health["failing"] is True
    same = {"d1": {"model_version": ts("1.1.0", SINCE + 5), "errors": ts(2, SINCE + 6)}}
    assert f.model_rollout_health(same, ["d1"], "1.1.0", SINCE, baseline=baseline)["healthy"]


def test_an_old_rejection_of_another_version_does_not_count() -> None:
    telemetry = {
        "d1": {
            "model_version": ts("1.2.0", SINCE + 5),
            "outcome": ts("rejected", SINCE - 100),
            "version": ts("1.2.0", SINCE - 100),
        },
        "d2": {
            "model_version": ts("1.2.0", SINCE + 5),
            "outcome": ts("rejected", SINCE + 1),
            "version": ts("1.1.9", SINCE + 1),
        },
    }
    health = f.model_rollout_health(telemetry, ["d1", "d2"], "1.2.0", SINCE)
    assert health["healthy"]
    assert health["rejected"] == {}


def test_no_devices_is_never_healthy() -> None:
    assert f.model_rollout_health({}, [], "1.1.0", SINCE)["healthy"] is False
