"""playbooks/rollout-model.yml end to end, on this machine: the EMQX and ThingsBoard
stand-ins (strict OpenAPI checking), the real IoT Gateway between them, and real simulated
devices that receive the announcements, switch models and report what they run.

The tests run in order on one platform and one class (vibration, three devices on sim-a;
one gesture device that must never be touched):
1. 1.0.0 -> 1.1.0 with one canary: healthy, promoted to the class;
2. the inventory still says 1.0.0: the next rollout refuses to start;
3. 1.1.0 -> 1.2.1 (a model whose tensors do not fit): the canaries reject it, rolled back;
4. 1.1.0 -> 1.2.0 with a canary that never answers (its host is down): the canaries that
   took it are rolled back to 1.1.0.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.model_rollout.platform import HOST, Platform, tb_latest, violations

VIBRATION = [f"{HOST}-vibration-{n:05d}" for n in (1, 2, 3)]
GESTURE = f"{HOST}-gesture-00001"
CLASS_TOPIC = "tinyml/classes/vibration/ota"


def device_topics(devices: list[str]) -> list[str]:
    return [f"tinyml/devices/{d}/ota" for d in devices]


def wait_for(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what}")
        time.sleep(0.2)


def announced_version(payload: bytes) -> str:
    return str(json.loads(payload)["version"])


@pytest.fixture(autouse=True)
def no_spec_violations(rollout_platform: Platform) -> Iterator[None]:
    """Every request the role sends conforms to the vendors' OpenAPI specs."""
    yield
    assert violations(rollout_platform) == []


def test_1_healthy_canary_is_promoted_to_the_class(rollout_platform: Platform) -> None:
    platform = rollout_platform
    wait_for(lambda: tb_latest(platform, VIBRATION[0]).get("model_version"), 30, "telemetry")
    run = platform.rollout(
        platform.inventory("1.0.0"),
        model_rollout_class="vibration",
        model_rollout_version="1.1.0",
        model_rollout_canary_count=1,
    )
    assert run.rc == 0, run.failures() or run.stdout[-3000:]
    record = platform.record()
    assert record["state"] == "promoted"
    assert (record["class_model"], record["class_version"]) == ("vibration-cnn", "1.1.0")
    (canary,) = record["canaries"]
    # Every vibration device follows the class announcement; the gesture device is untouched.
    wait_for(lambda: all(platform.sim.versions()[d] == "1.1.0" for d in VIBRATION), 20, "promotion")
    devices = platform.sim.devices()
    assert devices[GESTURE]["model_version"] == "1.0.0"
    assert devices[canary]["ota_applied"] == 1
    assert all(devices[d]["ota_rejected"] == 0 for d in VIBRATION)
    # The canary's OTA result reached ThingsBoard too (through the gateway's mapping).
    wait_for(
        lambda: (
            (tb_latest(platform, canary).get("outcome"), tb_latest(platform, canary).get("version"))
            == ("applied", "1.1.0")
        ),
        30,
        "the canary's OTA result in ThingsBoard",
    )
    retained = platform.retained([CLASS_TOPIC, *device_topics(VIBRATION)])
    assert list(retained) == [CLASS_TOPIC]  # the canary's announcement was cleared
    assert announced_version(retained[CLASS_TOPIC]) == "1.1.0"
    report = " ".join(str(r.get("msg")) for r in run.results("inventory change to make").values())
    assert "model_version: 1.1.0" in report


def test_2_a_stale_inventory_is_refused(rollout_platform: Platform) -> None:
    platform = rollout_platform
    run = platform.rollout(
        platform.inventory("1.0.0"), model_rollout_class="vibration", model_rollout_version="1.2.0"
    )
    assert run.rc != 0
    (message,) = run.failures()
    assert "Set model_version: 1.1.0" in message, message
    assert platform.record()["state"] == "promoted"  # nothing was touched


def test_3_a_model_the_canaries_reject_is_rolled_back(rollout_platform: Platform) -> None:
    platform = rollout_platform
    run = platform.rollout(
        platform.inventory("1.1.0"),
        model_rollout_class="vibration",
        model_rollout_version="1.2.1",
        model_rollout_canary_count=2,
        # A window that would be long enough to notice if the run did not stop at the
        # first rejection.
        model_rollout_health_window_s=60,
    )
    assert run.rc != 0
    message = run.failures()[-1]
    assert "rejected it" in message, message
    assert "signature" in message, message  # the device's reason, through ThingsBoard
    assert "Rolled back" in message, message
    # The rejections ended the 60 s window early: a reading a second would take 60.
    watch = run.result("until the health window ends")
    assert watch.get("attempts", 1) < 30, watch.get("attempts")
    record = platform.record()
    assert record["state"] == "rolled_back"
    assert (record["version"], record["class_version"]) == ("1.2.1", "1.1.0")
    devices = platform.sim.devices()
    assert all(devices[d]["model_version"] == "1.1.0" for d in VIBRATION)
    assert sum(devices[d]["ota_rejected"] for d in VIBRATION) == 2
    retained = platform.retained([CLASS_TOPIC, *device_topics(VIBRATION)])
    assert list(retained) == [CLASS_TOPIC]
    assert announced_version(retained[CLASS_TOPIC]) == "1.1.0"


def test_4_canaries_are_rolled_back_when_one_stays_silent(rollout_platform: Platform) -> None:
    """Every device of the class is a canary, one of them on a host that is down: the
    adoption stays below 1.0, and the devices that took 1.2.0 go back to 1.1.0."""
    platform = rollout_platform
    before = platform.sim.devices()
    run = platform.rollout(
        platform.inventory("1.1.0", extra_hosts={"sim-b": {"fleet_devices": {"vibration": 1}}}),
        model_rollout_class="vibration",
        model_rollout_version="1.2.0",
        model_rollout_canary_fraction=1.0,
        model_rollout_min_adoption=1.0,
    )
    assert run.rc != 0
    message = run.failures()[-1]
    assert "3/4 run 1.2.0" in message, message
    assert "no fresh report from sim-b-vibration-00001" in message, message
    assert "back on 1.1.0: 3/3 run 1.1.0" in message, message
    devices = platform.sim.devices()
    for name in VIBRATION:
        assert devices[name]["model_version"] == "1.1.0"
        # 1.2.0 applied, then 1.1.0 again.
        assert devices[name]["ota_applied"] == before[name]["ota_applied"] + 2
    assert devices[GESTURE]["ota_applied"] == 0
    record = platform.record()
    assert record["state"] == "rolled_back"
    assert sorted(record["canaries"]) == sorted([*VIBRATION, "sim-b-vibration-00001"])
    retained = platform.retained(
        [CLASS_TOPIC, *device_topics([*VIBRATION, "sim-b-vibration-00001"])]
    )
    assert list(retained) == [CLASS_TOPIC]
    assert announced_version(retained[CLASS_TOPIC]) == "1.1.0"
