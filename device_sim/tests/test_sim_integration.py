"""Against a real broker: Debian's mosquitto on a free loopback port, passwords and the ACL."""

from __future__ import annotations

import base64
import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.packettypes import PacketTypes
from sim_harness import Bridge, RunningFleet, wait_for
from sim_support import (
    CLASSES,
    MODELS_DIR,
    MOSQUITTO,
    Mosquitto,
    devices_file,
    free_port,
    write_json,
)
from tinyml_sim.modelcard import sha256_hex
from tinyml_sim.mqtt import MQTT311, new_properties
from tinyml_sim.schemas import validate

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="needs Debian's mosquitto"),
]

HOST = "it"
FLEET = devices_file(
    HOST,
    {"vibration": 200, "gesture": 10},
    CLASSES,
    faults={3: {"type": "imbalance", "start_s": 0.0}},
)


def subset(**counts: int) -> dict[str, Any]:
    """The first N devices of each class of FLEET (the broker knows all of them)."""
    doc = dict(FLEET)
    doc["devices"] = []
    for cls, n in counts.items():
        doc["devices"] += [d for d in FLEET["devices"] if d["class"] == cls][:n]
    return doc


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    server = Mosquitto(tmp_path_factory.mktemp("mosquitto"), FLEET["devices"])
    server.start()
    yield server
    server.stop()


@pytest.fixture
def bridge(broker: Mosquitto) -> Iterator[Bridge]:
    client = Bridge(broker)
    yield client
    client.close()


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    target = tmp_path / "models"
    shutil.copytree(MODELS_DIR, target, ignore=shutil.ignore_patterns("*.py"))
    return target


def name(cls: str, i: int) -> str:
    return f"{HOST}-{cls}-{i:05d}"


def test_200_devices_and_a_broker_restart_lose_no_qos1_inference(
    tmp_path: Path, models_dir: Path
) -> None:
    doc = subset(vibration=200)
    server = Mosquitto(tmp_path / "mosquitto", doc["devices"], persistence=True)
    server.start()
    bridge = Bridge(server, persistent=True)
    try:
        with RunningFleet(doc, server, models_dir, keepalive_s=5) as run:
            devices = run.fleet.devices
            wait_for(run.all_connected, 20, "200 connections")
            wait_for(lambda: all(d.acked >= 2 for d in devices), 20, "inferences acked")
            server.stop()
            wait_for(lambda: not any(d.link.connected for d in devices), 10, "links down")
            time.sleep(1.0)  # inferences pile up in the offline buffers meanwhile
            assert sum(len(d.buffer) for d in devices) > 0
            server.start()
            wait_for(lambda: all(d.reconnects >= 1 for d in devices), 40, "reconnects")
            wait_for(lambda: all(d.acked >= d.seq - 2 for d in devices), 20, "replay")

        # Clean shutdown waited for every in-flight QoS 1 publish.
        def missing() -> dict[str, list[int]]:
            gaps = {}
            for d in devices:
                got = {p["seq"] for p in bridge.received(d.name, "inference")}
                if lost := sorted(set(range(1, d.seq + 1)) - got):
                    gaps[d.name] = lost
            return gaps

        deadline = time.monotonic() + 30
        while (gaps := missing()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not gaps, {name: lost[:10] for name, lost in list(gaps.items())[:5]}
        for d in devices:
            assert d.buffer.dropped == 0
            assert len(d.buffer) == 0
            assert d.acked == d.seq == d.last_acked_seq
            assert bridge.received(d.name, "status")[0]["state"] == "online"
    finally:
        bridge.close()
        server.stop()


def test_the_connections_are_frozen_out_of_the_gc_once_all_are_up(
    broker: Mosquitto, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gc.freeze() once the devices exist, and again once every one has connected."""
    connected_at_freeze: list[int] = []
    run = RunningFleet(subset(vibration=3), broker, models_dir)
    monkeypatch.setattr(
        gc,
        "freeze",
        lambda: connected_at_freeze.append(sum(d.connects > 0 for d in run.fleet.devices)),
    )
    with run:
        wait_for(lambda: len(connected_at_freeze) == 2, 10, "the second freeze")
    assert connected_at_freeze[1] == 3
    assert len(connected_at_freeze) == 2


def test_publish_outside_the_acl_is_refused_and_reported(
    broker: Mosquitto, bridge: Bridge, models_dir: Path
) -> None:
    with RunningFleet(subset(vibration=1), broker, models_dir) as run:
        wait_for(run.all_connected, 10)
        dev = run.fleet.devices[0]
        foreign = f"tinyml/devices/{name('vibration', 2)}/cmd/response"
        props = new_properties(PacketTypes.PUBLISH)
        props.ResponseTopic = foreign
        bridge.publish(
            f"tinyml/devices/{dev.name}/cmd", '{"id":"x","method":"ping"}', properties=props
        )
        wait_for(lambda: dev.refused == 1, 10, "the refusal")
        assert not bridge.raw(foreign)
        wait_for(lambda: any(h["refused"] == 1 for h in bridge.received(dev.name, "health")), 5)
        assert dev.acked > 0  # its own topics still work


def test_malformed_commands_get_error_responses(
    broker: Mosquitto, bridge: Bridge, models_dir: Path
) -> None:
    with RunningFleet(subset(gesture=1), broker, models_dir) as run:
        wait_for(run.all_connected, 10)
        dev = run.fleet.devices[0]
        topic = f"tinyml/devices/{dev.name}/cmd"
        bad = [
            b"\x00garbage",
            b'{"id": "2", "method": "self_destruct"}',
            b'{"id": "3", "method": "set_rate", "params": {"sample_rate_hz": "fast"}}',
            b'{"method": "ping"}',
        ]
        for payload in bad:
            bridge.publish(topic, payload)
        props = new_properties(PacketTypes.PUBLISH)
        props.ResponseTopic = f"tinyml/devices/{dev.name}/cmd/response"
        props.CorrelationData = b"corr-42"
        bridge.publish(topic, '{"id": "5", "method": "get_status"}', properties=props)
        bridge.publish(topic, '{"id": "6", "method": "set_rate", "params": {"sample_rate_hz": 4}}')
        responses = f"tinyml/devices/{dev.name}/cmd/response"
        wait_for(lambda: len(bridge.raw(responses)) == 6, 10, "six responses")
        replies = bridge.raw(responses)
        docs = [json.loads(p) for p, _ in replies]
        for doc in docs:
            validate("cmd-response", doc)
        assert [d["ok"] for d in docs] == [False] * 4 + [True] * 2
        assert [d["error"]["code"] for d in docs[:4]] == [
            "bad_json",
            "unknown_method",
            "bad_params",
            "bad_request",
        ]
        assert docs[4]["result"]["name"] == dev.name
        assert replies[4][1].CorrelationData == b"corr-42"
        assert docs[5]["result"] == {"sample_rate_hz": 4.0}
        assert dev.errors == 4
        assert dev.link.connected


def test_alarm_raises_the_rate_and_clear_restores_it(
    broker: Mosquitto, bridge: Bridge, models_dir: Path
) -> None:
    with RunningFleet(subset(vibration=3), broker, models_dir) as run:
        wait_for(run.all_connected, 10)
        faulty = run.device(name("vibration", 3))
        topic = f"tinyml/devices/{faulty.name}/alert"
        wait_for(
            lambda: any(
                p["label"] == "imbalance" for p in bridge.received(faulty.name, "inference")
            ),
            10,
        )
        alarm = {
            "type": "Vibration anomaly",
            "severity": "MAJOR",
            "status": "ACTIVE_UNACK",
            "cleared": False,
            "originatorName": faulty.name,
        }
        bridge.publish(topic, json.dumps(alarm))
        wait_for(lambda: faulty.alarm_active, 5)
        assert faulty.rate_hz == 8.0
        before = faulty.inferences
        time.sleep(1.0)
        assert faulty.inferences - before >= 6
        bridge.publish(topic, "not json")
        bridge.publish(topic, json.dumps(dict(alarm, status="CLEARED_UNACK", cleared=True)))
        wait_for(lambda: not faulty.alarm_active, 5)
        assert faulty.rate_hz == 2.0
        assert faulty.alerts_received == 2
        assert faulty.errors == 1
        health = bridge.received(faulty.name, "health")
        assert any(h["alarm_active"] and h["sample_rate_hz"] == 8.0 for h in health)


def _announce(bridge: Bridge, topic: str, version: str, data: bytes, location: str) -> None:
    ann = {
        "class": "vibration",
        "model": "vibration-cnn",
        "version": version,
        "sha256": sha256_hex(data),
        "location": location,
    }
    bridge.publish(topic, json.dumps(ann), retain=True)


def test_ota_refuses_corrupt_models_and_applies_a_good_one(
    broker: Mosquitto, bridge: Bridge, models_dir: Path
) -> None:
    good = (models_dir / "vibration-cnn-1.0.0.tflite").read_bytes()
    wrong_shape = (models_dir / "gesture-cnn-1.0.0.tflite").read_bytes()
    # A new build of the same network: trailing bytes change the digest, not the graph.
    update = good + b"\0" * 16
    (models_dir / "vibration-cnn-1.1.0.tflite").write_bytes(update)
    (models_dir / "wrong.tflite").write_bytes(wrong_shape)
    class_topic = "tinyml/classes/vibration/ota"
    try:
        with RunningFleet(subset(vibration=3), broker, models_dir) as run:
            wait_for(run.all_connected, 10)
            devices = run.fleet.devices
            canary = devices[0]

            def outcomes(dev: Any) -> list[dict[str, Any]]:
                return bridge.received(dev.name, "ota/result")

            # Bad digest: the announced sha256 is not the file's.
            bridge.publish(
                class_topic,
                json.dumps(
                    {
                        "class": "vibration",
                        "model": "vibration-cnn",
                        "version": "1.0.9",
                        "sha256": "0" * 64,
                        "location": f"file://{models_dir}/vibration-cnn-1.1.0.tflite",
                    }
                ),
                retain=True,
            )
            wait_for(lambda: all(len(outcomes(d)) == 1 for d in devices), 10, "rejections")
            # Wrong input shape, correct digest, carried inside the announcement.
            _announce(
                bridge,
                class_topic,
                "1.0.8",
                wrong_shape,
                "data:application/octet-stream;base64," + base64.b64encode(wrong_shape).decode(),
            )
            wait_for(lambda: all(len(outcomes(d)) == 2 for d in devices), 10, "rejections")
            for dev in devices:
                first, second = outcomes(dev)
                assert (first["outcome"], second["outcome"]) == ("rejected", "rejected")
                assert "sha256" in first["reason"]
                assert "signature" in second["reason"]
                validate("ota-result", second)
                assert dev.classifier.card.version == "1.0.0"
            acked = canary.acked
            wait_for(lambda: canary.acked > acked, 5, "the old model to keep running")

            # Canary: a per-device override wins over the class announcement.
            _announce(
                bridge,
                f"tinyml/devices/{canary.name}/ota",
                "1.1.0",
                update,
                f"file://{models_dir}/vibration-cnn-1.1.0.tflite",
            )
            wait_for(lambda: outcomes(canary)[-1]["outcome"] == "applied", 10, "the canary")
            assert canary.classifier.card.version == "1.1.0"
            assert outcomes(canary)[-1]["previous_version"] == "1.0.0"
            assert [d.classifier.card.version for d in devices[1:]] == ["1.0.0", "1.0.0"]
            wait_for(
                lambda: any(
                    p["model_version"] == "1.1.0" for p in bridge.received(canary.name, "inference")
                ),
                5,
            )
            # Whole class: one interpreter for the new version, shared.
            _announce(
                bridge,
                class_topic,
                "1.1.0",
                update,
                f"file://{models_dir}/vibration-cnn-1.1.0.tflite",
            )
            wait_for(lambda: all(d.classifier.card.version == "1.1.0" for d in devices), 10)
            assert len({id(d.classifier) for d in devices}) == 1
            # Outside the models directory is refused (the canary keeps its override).
            _announce(bridge, class_topic, "1.2.0", b"x", "file:///etc/passwd")
            wait_for(lambda: all(outcomes(d)[-1]["version"] == "1.2.0" for d in devices[1:]), 10)
            assert "outside" in outcomes(devices[1])[-1]["reason"]
            assert all(d.classifier.card.version == "1.1.0" for d in devices)
            assert outcomes(canary)[-1]["version"] == "1.1.0"
    finally:
        bridge.publish(class_topic, b"", retain=True)
        bridge.publish(f"tinyml/devices/{name('vibration', 1)}/ota", b"", retain=True)


def test_mqtt_311_mode(broker: Mosquitto, bridge: Bridge, models_dir: Path) -> None:
    with RunningFleet(subset(gesture=2), broker, models_dir, protocol=MQTT311) as run:
        wait_for(run.all_connected, 10)
        dev = run.fleet.devices[0]
        wait_for(lambda: dev.acked > 0, 10)
        bridge.publish(f"tinyml/devices/{dev.name}/cmd", '{"id": "v3", "method": "ping"}')
        wait_for(lambda: bool(bridge.received(dev.name, "cmd/response")), 10)
        reply = bridge.received(dev.name, "cmd/response")[0]
        assert reply["id"] == "v3"
        assert reply["result"]["pong"] is True


def test_cli_metrics_healthcheck_and_sigterm(
    broker: Mosquitto, bridge: Bridge, models_dir: Path, tmp_path: Path
) -> None:
    doc = subset(vibration=4, gesture=2)
    devices = write_json(tmp_path / "devices.json", doc)
    port = free_port()
    stats, heartbeat = tmp_path / "stats.json", tmp_path / "heartbeat"
    env = dict(
        os.environ, TINYML_SIM_BROKER=broker.endpoint(), TINYML_SIM_MODELS_DIR=str(models_dir)
    )
    cli = [sys.executable, "-m", "tinyml_sim.cli"]
    proc = subprocess.Popen(
        [
            *cli,
            "run",
            "--devices-file",
            str(devices),
            "--metrics-port",
            str(port),
            "--metrics-host",
            "127.0.0.1",
            "--stats-file",
            str(stats),
            "--heartbeat-file",
            str(heartbeat),
            "--stats-interval",
            "1",
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def table() -> list[dict[str, Any]]:
            url = f"http://127.0.0.1:{port}/devices"
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.loads(response.read())  # type: ignore[no-any-return]

        wait_for(lambda: _quiet(table) and all(d["acked"] > 0 for d in table()), 20, "acks")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            metrics = response.read().decode()
        assert "tinyml_sim_connected 6.0" in metrics
        assert "tinyml_sim_acked_total" in metrics
        check = [*cli, "healthcheck", "--heartbeat-file", str(heartbeat)]
        assert subprocess.run(check, check=False).returncode == 0
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "connected=" in err  # the stats line
    final = json.loads(stats.read_text())
    assert final["totals"]["devices"] == 6
    for row in final["devices"]:
        assert row["acked"] == row["sent"] == row["last_acked_seq"]
        wait_for(_offline(bridge, row["name"]), 5, f"{row['name']} offline")
    assert (
        subprocess.run(
            [*cli, "healthcheck", "--heartbeat-file", str(tmp_path / "none")],
            check=False,
            capture_output=True,
        ).returncode
        == 1
    )


def _offline(bridge: Bridge, device: str) -> Callable[[], bool]:
    return lambda: bridge.received(device, "status")[-1]["state"] == "offline"


def _quiet(fn: Any) -> bool:
    try:
        fn()
    except OSError:
        return False
    return True


def test_the_container_healthcheck_imports_only_the_standard_library(tmp_path: Path) -> None:
    """Under load, importing NumPy and LiteRT outlasted the healthcheck's timeout."""
    heartbeat = tmp_path / "heartbeat"
    heartbeat.touch()
    probe = (
        "import sys, runpy\n"
        "try:\n    runpy.run_module('tinyml_sim.health', run_name='__main__')\n"
        "except SystemExit as done:\n"
        "    heavy = sorted({'numpy', 'jsonschema', 'ai_edge_litert'} & set(sys.modules))\n"
        "    print(done.code, heavy)\n"
    )
    env = {**os.environ, "TINYML_SIM_HEARTBEAT_FILE": str(heartbeat)}
    fresh = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False
    )
    assert fresh.stdout.splitlines()[-1] == "0 []", fresh
    stale = subprocess.run(
        [sys.executable, "-c", probe],
        env={**env, "TINYML_SIM_MAX_AGE": "-1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert stale.stdout.splitlines()[-1] == "1 []", stale
