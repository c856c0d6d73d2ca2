"""Payloads, devices file and commands against the versioned JSON schemas."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from jsonschema import ValidationError
from sim_support import CLASSES, MODELS_DIR, devices_file
from tinyml_sim.commands import CommandError, error_response, ok_response, parse_command
from tinyml_sim.config import DevicesFile
from tinyml_sim.device import FleetContext, VirtualDevice
from tinyml_sim.models import ModelRegistry
from tinyml_sim.mqtt import BrokerOptions, Hub
from tinyml_sim.ota import Announcement, OtaLoader
from tinyml_sim.schemas import validate
from tinyml_sim.stats import FleetStats
from tinyml_sim.ticker import Ticker

README = Path(__file__).resolve().parents[1] / "README.md"


class FakeLink:
    """Stands in for the MQTT link: connected, records what the device publishes."""

    connected = True
    endpoint = ("127.0.0.1", 1883)

    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    def publish(self, topic: str, payload: bytes, *_args: object, **_kwargs: object) -> int:
        self.published.append((topic, json.loads(payload)))
        return len(self.published)

    def subscribe(self, topics: list[tuple[str, int]]) -> None:
        self.subscribed = topics


@pytest.fixture
def device(registry: ModelRegistry) -> Iterator[VirtualDevice]:
    doc = devices_file("lab-vm2", {"vibration": 1}, CLASSES)
    spec = DevicesFile.from_json(doc)
    loop = asyncio.new_event_loop()
    hub = Hub(loop, BrokerOptions(endpoints=(("127.0.0.1", 1),)))
    stats = FleetStats()
    ctx = FleetContext(
        loop=loop, hub=hub, ota=OtaLoader(registry), ticker=Ticker(loop, stats), stats=stats
    )
    dev = VirtualDevice(
        ctx, spec.devices[0], spec.classes["vibration"], registry.get("vibration-cnn", "1.0.0")
    )
    dev.link = FakeLink()  # type: ignore[assignment]
    dev.started = loop.time()
    yield dev
    loop.close()


def published(dev: VirtualDevice, leaf: str) -> list[dict[str, Any]]:
    link: FakeLink = dev.link  # type: ignore[assignment]
    return [p for t, p in link.published if t == f"tinyml/devices/{dev.name}/{leaf}"]


def test_inference_and_health_payloads(device: VirtualDevice) -> None:
    window, _ = device.synth.window(0.0)
    result = device.classifier.classify(window)
    now = device.ctx.loop.time()
    device.on_result(window, result, now, now)
    later = now + 1.0  # past publish_max_interval_s: a heartbeat inference
    device.on_result(window, result, later, later)
    device.on_link_up()
    inferences = published(device, "inference")
    assert [p["seq"] for p in inferences] == [1, 2]
    for payload in inferences:
        validate("inference", payload)
        assert payload["class"] == "vibration"
        assert all(not isinstance(v, dict | list) for v in payload.values())  # flat for the gateway
    device._health()
    health = published(device, "health")[0]
    validate("health", health)
    assert health["free_ram_bytes"] == 98304 - device.classifier.card.arena_bytes
    status = published(device, "status")[0]
    validate("status", status)
    assert status["state"] == "online"


def test_ticker_records_each_windows_latencies(device: VirtualDevice) -> None:
    now = device.ctx.loop.time()
    device.ctx.ticker._run([(now - 0.25, device)], now)
    assert device.inferences == 1
    assert len(published(device, "inference")) == 1
    assert device.ctx.stats.tick_lag_s.take() == (1, 0.25, 0.25)
    assert device.ctx.stats.inference_us.take()[0] == 1


def test_the_ticker_never_handles_a_window_before_it_is_due() -> None:
    loop = asyncio.new_event_loop()
    ticker = Ticker(loop, FleetStats())
    handled: list[tuple[float, float]] = []
    ticker._run = lambda due, now: handled.extend((when, now) for when, _ in due)  # type: ignore[method-assign]

    class Due:
        tick_token = 0

    start = loop.time()
    for offset in (0.0013, 0.0151, 0.0199, 0.02, 0.0347):
        ticker.schedule(Due(), start + offset)  # type: ignore[arg-type]
    ticker.start()
    loop.run_until_complete(asyncio.sleep(0.08))
    ticker.stop()
    loop.close()
    assert len(handled) == 5
    assert all(when <= now < when + 0.03 for when, now in handled), handled


def test_a_device_that_fell_behind_keeps_its_phase(device: VirtualDevice) -> None:
    """After a stall longer than a period the next window is the first one after now on the
    device's own grid: devices with different phases stay on different slots."""
    period = device._period_s
    window, _ = device.synth.window(0.0)
    result = device.classifier.classify(window)
    due = device.started + 0.3 * period
    device.on_result(window, result, due, due + 0.01)
    assert device._next_due == pytest.approx(due + period)
    stalled = due + 2.45 * period
    device.on_result(window, result, due, stalled)
    assert device._next_due == pytest.approx(due + 3 * period)
    assert stalled < device._next_due <= stalled + period


def test_alarm_and_set_rate_change_rate_and_heartbeat(device: VirtualDevice) -> None:
    cfg = device.cfg
    assert device.rate_hz == cfg.sample_rate_hz
    assert device.policy.max_interval_s == cfg.publish_max_interval_s
    device._on_alert(json.dumps({"type": "t", "status": "ACTIVE_UNACK"}).encode())
    assert device.rate_hz == cfg.sample_rate_hz * cfg.alert_rate_factor
    assert device.policy.max_interval_s == cfg.publish_max_interval_s / cfg.alert_rate_factor
    assert published(device, "health")[-1]["sample_rate_hz"] == device.rate_hz
    device._on_alert(json.dumps({"type": "t", "status": "CLEARED_UNACK"}).encode())
    assert device.rate_hz == cfg.sample_rate_hz
    assert device.policy.max_interval_s == cfg.publish_max_interval_s
    device._run("set_rate", {"sample_rate_hz": 5.0})
    assert device.rate_hz == 5.0
    assert device.policy.max_interval_s == cfg.publish_max_interval_s


def test_offline_will_and_ota_result(device: VirtualDevice) -> None:
    validate("status", json.loads(device._envelope(state="offline")))
    ann = Announcement("vibration", "vibration-cnn", "1.0.1", "0" * 64, "file:///models/x")
    device._ota_result(ann, "1.0.0", "rejected", "sha256 mismatch")
    validate("ota-result", published(device, "ota/result")[0])


def test_command_responses(device: VirtualDevice) -> None:
    msg = mqtt.MQTTMessage(topic=b"tinyml/devices/x/cmd")
    msg.payload = json.dumps(
        {"id": "1", "method": "set_rate", "params": {"sample_rate_hz": 5}}
    ).encode()
    device._on_command(msg)
    msg.payload = b"{"
    device._on_command(msg)
    ok, bad = published(device, "cmd/response")
    validate("cmd-response", ok)
    validate("cmd-response", bad)
    assert ok == {"id": "1", "ok": True, "result": {"sample_rate_hz": 5.0}}
    assert bad["error"]["code"] == "bad_json"
    assert device.errors == 1


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\xff\xfe", "bad_json"),
        (b"[1, 2]", "bad_request"),
        (b'{"method": "ping"}', "bad_request"),
        (b'{"id": "7", "method": "reboot"}', "unknown_method"),
        (b'{"id": "7", "method": "set_rate", "params": {"sample_rate_hz": -1}}', "bad_params"),
        (b'{"id": "7", "method": "set_rate"}', "bad_request"),
    ],
)
def test_malformed_commands(payload: bytes, code: str) -> None:
    with pytest.raises(CommandError) as info:
        parse_command(payload)
    assert info.value.code == code
    validate("cmd-response", json.loads(error_response(info.value)))


def test_valid_command() -> None:
    command = parse_command(b'{"id": "a", "method": "ping"}')
    assert (command.id, command.method, command.params) == ("a", "ping", {})
    validate("cmd-response", json.loads(ok_response("a", {"pong": True})))


def test_devices_file_schema() -> None:
    doc = devices_file(
        "lab-vm2",
        {"vibration": 2, "gesture": 1},
        CLASSES,
        faults={1: {"type": "imbalance", "start_s": 60, "ramp_s": 600}},
    )
    doc["devices"][2]["drift"] = {"offset_per_h": 0.01}
    parsed = DevicesFile.from_json(doc)
    assert [d.name for d in parsed.devices] == [
        "lab-vm2-vibration-00001",
        "lab-vm2-vibration-00002",
        "lab-vm2-gesture-00001",
    ]
    assert parsed.devices[0].fault is not None
    assert parsed.classes["vibration"].buffer_size == 1000
    bad = json.loads(json.dumps(doc))
    bad["devices"][0]["name"] = "bad name"
    with pytest.raises(ValidationError):
        DevicesFile.from_json(bad)
    twice = json.loads(json.dumps(doc))
    twice["devices"][1]["name"] = twice["devices"][0]["name"]
    with pytest.raises(ValueError, match="twice"):
        DevicesFile.from_json(twice)


def test_announcements() -> None:
    good = {
        "class": "vibration",
        "model": "vibration-cnn",
        "version": "1.1.0",
        "sha256": "a" * 64,
        "location": "file:///models/vibration-cnn-1.1.0.tflite",
    }
    assert Announcement.parse(json.dumps(good).encode(), "vibration").version == "1.1.0"
    for broken in (b"", b"{}", json.dumps(dict(good, location="ftp://x")).encode()):
        with pytest.raises(ValueError, match="malformed"):
            Announcement.parse(broken, "vibration")
    with pytest.raises(ValueError, match="not 'gesture'"):
        Announcement.parse(json.dumps(good).encode(), "gesture")


def test_readme_examples_match_the_schemas() -> None:
    """Every ```json block in the README that names a schema is valid against it."""
    text = README.read_text()
    checked = 0
    for block in text.split("```json")[1:]:
        body = block.split("```")[0].lstrip()
        first, _, rest = body.partition("\n")
        name = first.strip().removeprefix("//").strip()
        if name.endswith(".v1"):
            validate(name.removesuffix(".v1"), json.loads(rest))
            checked += 1
    assert checked >= 8


def test_committed_cards_are_valid_against_their_schema() -> None:
    for path in MODELS_DIR.glob("*.json"):
        validate("model-card", json.loads(path.read_text()))
