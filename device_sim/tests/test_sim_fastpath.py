"""The per-tick fast paths give exactly what the plain per-window, per-message code gives:
batched inference, the payload template, batched synthesis, and the paho shortcuts."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sim_support import MODELS_DIR
from tinyml_sim.batchmodel import unpin_reshape_batch
from tinyml_sim.device import InferenceTemplate, _dumps
from tinyml_sim.modelcard import ModelCard
from tinyml_sim.models import BATCH_MAX, Classifier, Inference, ModelRegistry
from tinyml_sim.mqtt import _Client
from tinyml_sim.quant import quantize
from tinyml_sim.synth import PHYSICS, DriftSchedule, FaultSchedule, SensorSynth


def fleet_windows(cls: str, n: int) -> list[SensorSynth]:
    physics = PHYSICS[cls]
    synths = []
    for seed in range(n):
        fault = None
        if seed % 3:
            kind = physics.fault_types[seed % len(physics.fault_types)]
            fault = FaultSchedule(kind, 0.0, 0.0, 0.3 + (seed % 7) / 10)
        drift = DriftSchedule(0.0, 0.5, 0.1, 0.05) if seed % 5 == 4 else None
        synths.append(SensorSynth(physics, seed, fault, drift))
    return synths


@pytest.mark.parametrize("cls", ["vibration", "gesture"])
@pytest.mark.parametrize("n", [1, 2, 3, BATCH_MAX - 1, BATCH_MAX, BATCH_MAX + 1, 200])
def test_batched_inference_equals_per_window(registry: ModelRegistry, cls: str, n: int) -> None:
    classifier = registry.get(f"{cls}-cnn", "1.0.0")
    windows, _ = SensorSynth.windows(fleet_windows(cls, n), [1.5] * n)
    q = quantize(windows, *classifier.input_quantization)
    batched = classifier.classify_batch(q)
    single = [classifier.classify_quantized(w) for w in q]
    assert [r[:3] for r in batched] == [r[:3] for r in single]  # inference_us aside
    assert all(isinstance(r, Inference) and r.inference_us >= 0 for r in batched)


@pytest.mark.parametrize("cls", ["vibration", "gesture"])
def test_committed_models_batch_after_unpinning_reshape(cls: str) -> None:
    card = ModelCard.load(MODELS_DIR / f"{cls}-cnn-1.0.0.json")
    data = (MODELS_DIR / f"{cls}-cnn-1.0.0.tflite").read_bytes()
    unpinned = unpin_reshape_batch(data)
    assert unpinned is not None
    assert len(unpinned) == len(data)
    # Only the RESHAPE shape constants changed: 1 -> -1 in one int32 each.
    changed = [i for i, (a, b) in enumerate(zip(data, unpinned, strict=True)) if a != b]
    assert 0 < len(changed) <= 8
    assert Classifier(card, data).batched


def test_unbatchable_model_falls_back_to_per_window(registry: ModelRegistry) -> None:
    fresh = Classifier(
        ModelCard.load(MODELS_DIR / "vibration-cnn-1.0.0.json"),
        (MODELS_DIR / "vibration-cnn-1.0.0.tflite").read_bytes(),
    )
    fresh._batched = {}  # as when neither the model nor its unpinned copy agree
    windows, _ = SensorSynth.windows(fleet_windows("vibration", 5), [2.0] * 5)
    q = quantize(windows, *fresh.input_quantization)
    reference = registry.get("vibration-cnn", "1.0.0")
    assert [r[:3] for r in fresh.classify_batch(q)] == [r[:3] for r in reference.classify_batch(q)]


def test_unpin_leaves_other_files_alone() -> None:
    assert unpin_reshape_batch(b"not a flatbuffer") is None
    assert unpin_reshape_batch(b"") is None


@pytest.mark.parametrize(
    "result",
    [
        Inference(0, 0.99609375, 0.00390625, 12),
        Inference(3, 1.0, 1.0, 0),
        Inference(1, 0.5, 0.0, 123456),
        Inference(2, 0.123456789, 0.987654321, 7),
    ],
)
@pytest.mark.parametrize("rate", [1.0, 100.0, 0.25, 4])
def test_payload_template_is_byte_identical_to_json(
    vibration: Classifier, result: Inference, rate: float
) -> None:
    card = vibration.card
    template = InferenceTemplate("vibration", card.name, card.version, card.labels)
    expected = _dumps(
        {
            "schema": 1,
            "class": "vibration",
            "model": card.name,
            "model_version": card.version,
            "ts": 1732300000123,
            "seq": 42,
            "label": card.labels[result.label_index],
            "label_index": result.label_index,
            "confidence": round(result.confidence, 4),
            "anomaly_score": round(result.anomaly_score, 4),
            "inference_us": result.inference_us,
            "sample_rate_hz": rate,
        }
    )
    assert template.render(1732300000123, 42, result, rate) == expected


def test_template_escapes_like_json() -> None:
    template = InferenceTemplate('a"b', "m\\1", "1.0", ("ü", 'q"'))
    got = json.loads(template.render(1, 2, Inference(1, 0.5, 0.5, 3), 1.0))
    assert got["class"] == 'a"b'
    assert got["model"] == "m\\1"
    assert got["label"] == 'q"'


@pytest.mark.parametrize("cls", ["vibration", "gesture"])
def test_batch_synthesis_equals_one_by_one(cls: str) -> None:
    times = [0.01 * i + 1.0 for i in range(40)]
    together, labels = SensorSynth.windows(fleet_windows(cls, 40), times)
    alone = [s.window(t) for s, t in zip(fleet_windows(cls, 40), times, strict=True)]
    assert np.array_equal(together, np.stack([w for w, _ in alone]))
    assert labels.tolist() == [label for _, label in alone]


@pytest.fixture
def wired() -> Iterator[tuple[_Client, mqtt.Client, socket.socket]]:
    """Two clients on a socketpair as if connected (no broker): the fast one and paho's."""
    fast = _Client(CallbackAPIVersion.VERSION2, client_id="a", protocol=mqtt.MQTTv5)
    plain = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="a", protocol=mqtt.MQTTv5)
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    for client in (fast, plain):
        client.max_inflight_messages_set(20)
        client._sock = ours
        client.on_socket_register_write = lambda *_: None  # an external loop
    yield fast, plain, theirs
    ours.close()
    theirs.close()


def test_publish_qos1_queues_what_paho_queues(wired: tuple[_Client, mqtt.Client, Any]) -> None:
    fast, plain, _ = wired
    for payload in (b"x", b"y" * 300, b"z" * 20000):
        mid_fast = fast.publish_qos1("tinyml/devices/d/inference", payload)
        mid_plain = plain.publish("tinyml/devices/d/inference", payload, qos=1).mid
        assert mid_fast == mid_plain
        a, b = fast._out_packet.pop(), plain._out_packet.pop()
        assert bytes(a["packet"]) == bytes(b["packet"])
        assert {k: v for k, v in a.items() if k not in ("packet", "info")} == {
            k: v for k, v in b.items() if k not in ("packet", "info")
        }
        ma, mb = fast._out_messages[mid_fast], plain._out_messages[mid_plain]
        for attr in ("mid", "topic", "payload", "qos", "retain", "dup", "state", "properties"):
            assert getattr(ma, attr) == getattr(mb, attr), attr
    assert fast._inflight_messages == plain._inflight_messages == 3


def test_fast_puback_acks_and_paho_handles_the_rest(
    wired: tuple[_Client, mqtt.Client, socket.socket],
) -> None:
    fast, _, broker = wired
    acked: list[int] = []
    fast.on_publish = lambda _c, _u, mid, _r, _p: acked.append(mid)
    mids = [fast.publish_qos1("t", b"p") for _ in range(3)]
    # Two plain PUBACKs and one with a reason code (paho's own parser), in one segment.
    broker.sendall(
        bytes([0x40, 2, 0, mids[0]])
        + bytes([0x40, 2, 0, mids[1]])
        + bytes([0x40, 4, 0, mids[2], 0x10, 0])
    )
    fast.loop_read()
    assert acked == mids
    assert not fast._out_messages
    assert fast._inflight_messages == 0
